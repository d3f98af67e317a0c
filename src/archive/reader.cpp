// read(): the committed rows of an archive, grouped by config. Opens with SWMR read so it works
// while a sweep writes the file and after a writer was killed.
#include <cmath>
#include <functional>
#include <unordered_map>

#include "format.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::archive {

namespace {
// /generations rows with their runs of /generation_tokens and /generation_text. A run outside
// the committed rows is an error naming the row (verify reports the same without throwing).
void read_generations(const h5::Handle& f, const format::Commit& c, const std::string& path,
                      const std::function<ConfigResult*(const format::Rows&, std::size_t)>& owner) {
  const auto rows = [&](const char* t) { return format::read_rows(f, format::table(t), c.counts.at(t), path); };
  const format::Rows g = rows("generations"), tok = rows("generation_tokens"), txt = rows("generation_text");
  const auto* ids = reinterpret_cast<const std::int32_t*>(tok.col("token").data.data());
  const char* bytes = txt.col("byte").data.data();
  for (std::size_t i = 0; i < g.rows(); ++i) {
    ConfigResult* o = owner(g, i);
    if (!o) continue;
    const std::int64_t tb = g.col("tokens_begin").get_i64(i), nt = g.col("n_tokens").get_i32(i);
    const std::int64_t xb = g.col("text_begin").get_i64(i), nx = g.col("text_bytes").get_i32(i);
    if (tb < 0 || nt < 0 || static_cast<std::uint64_t>(tb + nt) > tok.rows())
      fail(path, "/generations/tokens_begin", "row " + std::to_string(i) + ": tokens [" + std::to_string(tb) + ", +" +
                                                  std::to_string(nt) + ") outside the " + std::to_string(tok.rows()) +
                                                  " committed rows of /generation_tokens");
    if (xb < 0 || nx < 0 || static_cast<std::uint64_t>(xb + nx) > txt.rows())
      fail(path, "/generations/text_begin", "row " + std::to_string(i) + ": bytes [" + std::to_string(xb) + ", +" +
                                                std::to_string(nx) + ") outside the " + std::to_string(txt.rows()) +
                                                " committed rows of /generation_text");
    GenerationRecord r;
    r.config_id = o->config.id;
    r.task = g.col("task").get_str(i);
    r.item = g.col("item").get_i64(i);
    r.stop = g.col("stop").get_str(i);
    r.tokens.assign(ids + tb, ids + tb + nt);
    r.text.assign(bytes + xb, static_cast<std::size_t>(nx));
    o->generations.push_back(std::move(r));
  }
}

// /item_runs rows with their runs of /items or /item_docs. A run outside the committed rows is an
// error naming the row (verify reports the same without throwing).
void read_items(const h5::Handle& f, const format::Commit& c, const std::string& path,
                const std::function<ConfigResult*(const format::Rows&, std::size_t)>& owner) {
  const auto rows = [&](const char* t) { return format::read_rows(f, format::table(t), c.counts.at(t), path); };
  const format::Rows runs = rows("item_runs"), items = rows("items"), docs = rows("item_docs");
  for (std::size_t i = 0; i < runs.rows(); ++i) {
    ConfigResult* o = owner(runs, i);
    if (!o) continue;
    ItemOutcomes it;
    it.config_id = o->config.id;
    it.task = runs.col("task").get_str(i);
    it.kind = runs.col("kind").get_str(i);
    const std::int64_t b = runs.col("begin").get_i64(i), n = runs.col("count").get_i64(i);
    const bool rolling = it.kind == "rolling";
    const std::uint64_t avail = rolling ? docs.rows() : items.rows();
    if (b < 0 || n < 0 || static_cast<std::uint64_t>(b + n) > avail)
      fail(path, "/item_runs/begin", "row " + std::to_string(i) + ": rows [" + std::to_string(b) + ", +" +
                                         std::to_string(n) + ") outside the " + std::to_string(avail) +
                                         " committed rows of " + (rolling ? "/item_docs" : "/items"));
    const auto at = static_cast<std::size_t>(b), len = static_cast<std::size_t>(n);
    if (rolling) {
      it.doc_loglik = docs.col("loglik").slice<double>(at, len);
      it.doc_tokens = docs.col("tokens").slice<std::int64_t>(at, len);
      it.doc_words = docs.col("words").slice<std::int64_t>(at, len);
      it.doc_bytes = docs.col("bytes").slice<std::int64_t>(at, len);
    } else {
      it.outcome = items.col("outcome").slice<std::uint8_t>(at, len);
      it.chosen = items.col("chosen").slice<std::int32_t>(at, len);
      it.gold_loglik = items.col("gold_loglik").slice<float>(at, len);
    }
    o->items.push_back(std::move(it));
  }
}

// A /configs-shaped row (the first columns of /configs and /failures).
ConfigRecord config_at(const format::Rows& r, std::size_t i, const std::string& path) {
  ConfigRecord k;
  k.id = r.col("config_id").get_u64(i);
  k.kind = r.col("kind").get_str(i);
  k.method = r.col("method").get_str(i);
  k.params = r.col("params").get_str(i);
  k.n = r.col("n").get_i32(i);
  k.sample = r.col("sample").get_i32(i);
  k.members = format::parse_members(r.col("members").get_str(i), path);
  return k;
}

std::vector<FailureRecord> read_failures(const format::Rows& r, const std::string& path) {
  std::vector<FailureRecord> out;
  for (std::size_t i = 0; i < r.rows(); ++i)
    out.push_back({config_at(r, i, path), r.col("failure").get_str(i), r.col("message").get_str(i),
                   r.col("group").get_i32(i), r.col("session").get_i32(i), r.col("time").get_f64(i)});
  return out;
}

const char* const kAttributes[] = {"format_version", "mergesweep_version", "git_revision", "spec_text", "spec_hash",
                                   "plan_hash",      "host",               "ranks",        "group_size", "start_time"};
}

Contents read(const std::string& path) {
  using format::Rows;
  h5::Handle file = format::open_read(path);
  const h5::Handle& f = file;
  format::check_structure(f, path);
  Contents out;
  for (const char* a : kAttributes)
    if (h5::has_attr(f, a)) out.attributes[a] = h5::read_attr_text(f, a, path);
  const format::Commit c = format::last_commit(f, path);
  auto rows = [&](const char* t) { return format::read_rows(f, format::table(t), c.counts.at(t), path); };

  const Rows ck = rows("checkpoints");
  for (std::size_t i = 0; i < ck.rows(); ++i)
    out.checkpoints.push_back({ck.col("model").get_i32(i), ck.col("name").get_str(i), ck.col("path").get_str(i),
                               ck.col("sha256").get_str(i), ck.col("bytes").get_u64(i)});
  const Rows tk = rows("tasks");
  for (std::size_t i = 0; i < tk.rows(); ++i)
    out.tasks.push_back({tk.col("name").get_str(i), tk.col("kind").get_str(i), tk.col("path").get_str(i),
                         tk.col("sha256").get_str(i), tk.col("items").get_i64(i)});

  const Rows cf = rows("configs");
  std::unordered_map<std::uint64_t, std::size_t> index;
  out.configs.reserve(cf.rows());
  for (std::size_t i = 0; i < cf.rows(); ++i) {
    ConfigResult r;
    r.config = config_at(cf, i, path);
    if (!index.emplace(r.config.id, out.configs.size()).second) continue;  // a duplicate: verify reports it
    out.configs.push_back(std::move(r));
  }
  // Rows of configs that are not committed are skipped here; `mergesweep archive verify` reports them.
  auto owner = [&](const Rows& t, std::size_t i) -> ConfigResult* {
    const auto it = index.find(t.col("config_id").get_u64(i));
    return it == index.end() ? nullptr : &out.configs[it->second];
  };
  const Rows rs = rows("results");
  for (std::size_t i = 0; i < rs.rows(); ++i)
    if (auto* o = owner(rs, i))
      o->results.push_back({o->config.id, rs.col("task").get_str(i), rs.col("metric").get_str(i),
                            rs.col("value").get_f64(i), rs.col("stderr").get_f64(i), rs.col("n").get_i64(i)});
  const Rows st = rows("model_stats");
  for (std::size_t i = 0; i < st.rows(); ++i)
    if (auto* o = owner(st, i)) {
      ModelStatRecord s;
      s.config_id = o->config.id;
      s.l2_from_base = st.col("l2_from_base").get_f64(i);
      s.cos_mean = st.col("cos_mean").get_f64(i);
      s.cos_min = st.col("cos_min").get_f64(i);
      s.cos_max = st.col("cos_max").get_f64(i);
      for (const auto& k : format::l2_kinds()) {
        const double v = st.col("l2_" + k).get_f64(i);
        if (!std::isnan(v)) s.l2_by_kind[k] = v;
      }
      o->stats.push_back(std::move(s));
    }
  const Rows pr = rows("probes");
  for (std::size_t i = 0; i < pr.rows(); ++i)
    if (auto* o = owner(pr, i))
      o->probes.push_back({o->config.id, pr.col("probe").get_str(i), pr.col("layer").get_i32(i),
                           pr.col("f1_mean").get_f64(i), pr.col("f1_std").get_f64(i), pr.col("seeds").get_i32(i)});
  const Rows tm = rows("timings");
  for (std::size_t i = 0; i < tm.rows(); ++i)
    if (auto* o = owner(tm, i))
      o->timing = {o->config.id,          tm.col("merge_s").get_f64(i), tm.col("eval_s").get_f64(i),
                   tm.col("probe_s").get_f64(i), tm.col("total_s").get_f64(i), tm.col("group").get_i32(i)};
  if (c.version >= 2) read_generations(f, c, path, owner);
  if (c.version >= 3) out.failures = read_failures(rows("failures"), path);
  if (c.version >= 4) read_items(f, c, path, owner);
  if (c.version >= 5) {
    const Rows fp = rows("fingerprints");
    for (std::size_t i = 0; i < fp.rows(); ++i)
      if (auto* o = owner(fp, i))
        o->fingerprints.push_back({o->config.id, fp.col("fingerprint").get_u64(i), fp.col("dtype").get_str(i)});
  }
  return out;
}

std::map<std::int32_t, std::string> model_names(const std::vector<CheckpointRecord>& files) {
  std::map<std::int32_t, std::string> out;
  for (const auto& f : files) out.emplace(f.model, f.name);  // a model's first file names it
  return out;
}

std::string member_names_text(const std::vector<std::int32_t>& members, const std::map<std::int32_t, std::string>& names) {
  std::string s;
  for (std::size_t i = 0; i < members.size(); ++i) {
    const auto it = names.find(members[i]);
    s += (i ? "," : "") + (it == names.end() || it->second.empty() ? std::to_string(members[i]) : it->second);
  }
  return s;
}

}  // namespace ms::archive
