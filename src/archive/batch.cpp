#include "batch.hpp"

#include <cmath>
#include <limits>

#include "mergesweep/core/error.hpp"

namespace ms::archive::format {

bool valid_stop(const std::string& s) { return s == "until" || s == "stop_token" || s == "length"; }
bool valid_item_kind(const std::string& s) { return s == "choice" || s == "rolling"; }
bool valid_fingerprint_dtype(const std::string& s) { return s == "float32" || s == "bfloat16"; }

Batch::Batch(std::string path, const std::map<std::string, std::uint64_t>& committed)
    : path_(std::move(path)),
      tokens_at_(committed.at("generation_tokens")),
      text_at_(committed.at("generation_text")),
      items_at_(committed.at("items")),
      docs_at_(committed.at("item_docs")),
      cf_(table("configs")),
      rs_(table("results")),
      st_(table("model_stats")),
      pr_(table("probes")),
      tm_(table("timings")),
      gen_(table("generations")),
      gtok_(table("generation_tokens")),
      gtxt_(table("generation_text")),
      fl_(table("failures")),
      runs_(table("item_runs")),
      items_(table("items")),
      docs_(table("item_docs")),
      fp_(table("fingerprints")) {}

std::vector<Rows> Batch::tables() const {
  return {cf_, rs_, st_, pr_, tm_, gen_, gtok_, gtxt_, fl_, runs_, items_, docs_, fp_};
}

void Batch::add_stats(std::uint64_t id, const ModelStatRecord& s) {
  st_.col("config_id").u64(id);
  st_.col("l2_from_base").f64(s.l2_from_base);
  st_.col("cos_mean").f64(s.cos_mean);
  st_.col("cos_min").f64(s.cos_min);
  st_.col("cos_max").f64(s.cos_max);
  for (const auto& [k, v] : s.l2_by_kind) {
    bool known = false;
    for (const auto& kk : l2_kinds()) known = known || kk == k;
    if (!known)
      fail(path_, "/model_stats/l2_" + k,
           "unknown tensor kind '" + k + "' (the archive has columns for embed, lm_head, attn, mlp, norm, other)");
  }
  for (const auto& k : l2_kinds()) {
    const auto it = s.l2_by_kind.find(k);
    st_.col("l2_" + k).f64(it == s.l2_by_kind.end() ? std::nan("") : it->second);
  }
}

void Batch::add_generation(std::uint64_t id, const GenerationRecord& g) {
  if (!valid_stop(g.stop))
    fail(path_, "/generations/stop", "'" + g.stop + "' is not until, stop_token or length (task " + g.task + ", item " +
                                         std::to_string(g.item) + ")");
  constexpr std::size_t kMax = std::numeric_limits<std::int32_t>::max();
  if (g.tokens.size() > kMax || g.text.size() > kMax)
    fail(path_, "/generations", "generation of task " + g.task + ", item " + std::to_string(g.item) +
                                    " is longer than 2^31-1 tokens or bytes");
  gen_.col("config_id").u64(id);
  gen_.col("task").str(g.task, "generations", path_);
  gen_.col("item").i64(g.item);
  gen_.col("stop").str(g.stop, "generations", path_);
  gen_.col("tokens_begin").i64(static_cast<std::int64_t>(tokens_at_ + gtok_.rows()));
  gen_.col("n_tokens").i32(static_cast<std::int32_t>(g.tokens.size()));
  gen_.col("text_begin").i64(static_cast<std::int64_t>(text_at_ + gtxt_.rows()));
  gen_.col("text_bytes").i32(static_cast<std::int32_t>(g.text.size()));
  gtok_.col("token").i32s(g.tokens);
  gtxt_.col("byte").bytes(g.text);
}

void Batch::add_items(std::uint64_t id, const ItemOutcomes& it) {
  if (!valid_item_kind(it.kind))
    fail(path_, "/item_runs/kind", "'" + it.kind + "' is not choice or rolling (task " + it.task + ")");
  const bool rolling = it.kind == "rolling";
  const std::size_t n = it.size();
  const bool aligned = rolling ? it.doc_tokens.size() == n && it.doc_words.size() == n && it.doc_bytes.size() == n
                               : it.chosen.size() == n && it.gold_loglik.size() == n;
  if (!aligned) fail(path_, rolling ? "/item_docs" : "/items", "task " + it.task + ": per-item columns of unequal length");
  runs_.col("config_id").u64(id);
  runs_.col("task").str(it.task, "item_runs", path_);
  runs_.col("kind").str(it.kind, "item_runs", path_);
  runs_.col("begin").i64(static_cast<std::int64_t>(rolling ? docs_at_ + docs_.rows() : items_at_ + items_.rows()));
  runs_.col("count").i64(static_cast<std::int64_t>(n));
  if (rolling) {
    docs_.col("loglik").f64s(it.doc_loglik);
    docs_.col("tokens").i64s(it.doc_tokens);
    docs_.col("words").i64s(it.doc_words);
    docs_.col("bytes").i64s(it.doc_bytes);
  } else {
    items_.col("outcome").u8s(it.outcome);
    items_.col("chosen").i32s(it.chosen);
    items_.col("gold_loglik").f32s(it.gold_loglik);
  }
}

namespace {
// Cut to `width` bytes without splitting a UTF-8 sequence; NULs (never in a column) become '?'.
std::string fit_message(std::string s, std::size_t width) {
  for (auto& ch : s)
    if (ch == '\0') ch = '?';
  if (s.size() <= width) return s;
  std::size_t n = width - 3;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // s[n] starts a character
  return s.substr(0, n) + "...";
}
}  // namespace

void Batch::add_config(Rows& rows, const ConfigRecord& c) {
  const std::string t = rows.table->name;
  rows.col("config_id").u64(c.id);
  rows.col("kind").str(c.kind, t, path_);
  rows.col("method").str(c.method, t, path_);
  rows.col("params").str(c.params, t, path_);
  rows.col("n").i32(c.n);
  rows.col("sample").i32(c.sample);
  rows.col("members").str(members_text(c.members), t, path_);
}

void Batch::add_failure(const FailureRecord& f) {
  add_config(fl_, f.config);
  fl_.col("failure").str(f.failure, "failures", path_);
  fl_.col("message").str(fit_message(f.message, fl_.col("message").col->len), "failures", path_);
  fl_.col("group").i32(f.group);
  fl_.col("session").i32(f.session);
  fl_.col("time").f64(f.time);
}

void Batch::add(const ConfigResult& cr) {
  const auto& c = cr.config;
  add_config(cf_, c);
  for (const auto& r : cr.results) {
    rs_.col("config_id").u64(c.id);
    rs_.col("task").str(r.task, "results", path_);
    rs_.col("metric").str(r.metric, "results", path_);
    rs_.col("value").f64(r.value);
    rs_.col("stderr").f64(r.stderr_);
    rs_.col("n").i64(r.n);
  }
  for (const auto& s : cr.stats) add_stats(c.id, s);
  for (const auto& p : cr.probes) {
    pr_.col("config_id").u64(c.id);
    pr_.col("probe").str(p.probe, "probes", path_);
    pr_.col("layer").i32(p.layer);
    pr_.col("f1_mean").f64(p.f1_mean);
    pr_.col("f1_std").f64(p.f1_std);
    pr_.col("seeds").i32(p.seeds);
  }
  const auto& t = cr.timing;
  tm_.col("config_id").u64(c.id);
  tm_.col("merge_s").f64(t.merge_s);
  tm_.col("eval_s").f64(t.eval_s);
  tm_.col("probe_s").f64(t.probe_s);
  tm_.col("total_s").f64(t.total_s);
  tm_.col("group").i32(t.group);
  for (const auto& g : cr.generations) add_generation(c.id, g);
  for (const auto& it : cr.items) add_items(c.id, it);
  if (cr.fingerprints.size() > 1) fail(path_, "/fingerprints", "config " + std::to_string(c.id) + " has two fingerprints");
  for (const auto& f : cr.fingerprints) {
    if (!valid_fingerprint_dtype(f.dtype)) fail(path_, "/fingerprints/dtype", "'" + f.dtype + "' is not float32 or bfloat16");
    fp_.col("config_id").u64(c.id);
    fp_.col("fingerprint").u64(f.fingerprint);
    fp_.col("dtype").str(f.dtype, "fingerprints", path_);
  }
}

}  // namespace ms::archive::format
