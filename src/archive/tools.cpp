// info / verify / export / merge of whole archives (the `mergesweep archive` verb's logic).
#include "mergesweep/archive/tools.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "batch.hpp"
#include "format.hpp"
#include "lock_file.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/sha256.hpp"
#include "mergesweep/eval/aggregate.hpp"

namespace fs = std::filesystem;

namespace ms::archive {
namespace {

using format::Rows;

// Superblock v2/v3 (the only ones this format writes) keep the consistency flags at byte 11.
bool superblock_open_flag(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char b[12] = {0};
  if (!in.read(reinterpret_cast<char*>(b), sizeof b)) return false;
  static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  if (std::memcmp(b, sig, 8) != 0 || b[8] < 2) return false;
  return (b[11] & 0x05) != 0;  // bit 0: open for write, bit 2: open for SWMR write
}

void need(bool ok, std::vector<std::string>& problems, const std::string& what) {
  if (!ok) problems.push_back(what);
}

Provenance provenance_of(const Contents& c) {
  auto a = [&](const char* k) {
    const auto it = c.attributes.find(k);
    return it == c.attributes.end() ? std::string() : it->second;
  };
  Provenance p;
  p.spec_text = a("spec_text");
  p.spec_hash = a("spec_hash");
  p.plan_hash = a("plan_hash");
  p.version = a("mergesweep_version");
  p.git_revision = a("git_revision");
  p.host = a("host");
  p.start_time = a("start_time");
  try {
    p.ranks = std::stoi(a("ranks"));
    p.group_size = std::stoi(a("group_size"));
  } catch (const std::exception&) {
  }
  return p;
}

// Which configs have generations of a task, and which of those have a /results row for it.
std::map<std::string, GenerationTaskStatus> generation_status(const h5::Handle& f, const format::Commit& c,
                                                              const std::string& path) {
  const Rows g = format::read_rows(f, format::table("generations"), c.counts.at("generations"), path);
  const Rows r = format::read_rows(f, format::table("results"), c.counts.at("results"), path);
  std::set<std::pair<std::string, std::uint64_t>> generated, scored;
  for (std::size_t i = 0; i < g.rows(); ++i) generated.emplace(g.col("task").get_str(i), g.col("config_id").get_u64(i));
  for (std::size_t i = 0; i < r.rows(); ++i) scored.emplace(r.col("task").get_str(i), r.col("config_id").get_u64(i));
  std::map<std::string, GenerationTaskStatus> out;
  for (const auto& key : generated) {
    auto& st = out[key.first];
    ++st.configs;
    if (!scored.count(key)) ++st.unscored;
  }
  return out;
}

}  // namespace

Summary summarize(const std::string& path) {
  Summary s;
  {
    h5::Handle file = format::open_read(path);
    const h5::Handle& f = file;
    format::check_structure(f, path);
    const format::Commit c = format::last_commit(f, path);
    s.commits = c.seq;
    s.last_commit_time = c.time;
    for (const auto& t : format::tables(c.version)) {
      s.rows.emplace_back(t.name, c.counts.at(t.name));
      const auto l = format::column_lengths(f, t, path);
      s.stored[t.name] = *std::max_element(l.begin(), l.end());
    }
    const Rows ck = format::read_rows(f, format::table("checkpoints"), c.counts.at("checkpoints"), path);
    for (std::size_t i = 0; i < ck.rows(); ++i) s.models.emplace(ck.col("model").get_i32(i), ck.col("name").get_str(i));
    s.model_files = ck.rows();
    const Rows sp = format::read_rows(f, format::table("specs"), c.counts.at("specs"), path);
    for (std::size_t i = 0; i < sp.rows(); ++i)
      s.sessions.emplace_back(sp.col("start_time").get_str(i), sp.col("spec_hash").get_str(i));
    const Rows cf = format::read_rows(f, format::table("configs"), c.counts.at("configs"), path);
    std::set<std::uint64_t> done;
    for (std::size_t i = 0; i < cf.rows(); ++i) {
      std::string m = cf.col("method").get_str(i);
      if (m.empty()) m = cf.col("kind").get_str(i);
      ++s.configs_by_method_size[m][cf.col("n").get_i32(i)];
      done.insert(cf.col("config_id").get_u64(i));
    }
    if (c.version >= 2) s.generations = generation_status(f, c, path);
    if (c.version >= 3) {
      const Rows fl = format::read_rows(f, format::table("failures"), c.counts.at("failures"), path);
      std::set<std::uint64_t> failed;
      for (std::size_t i = 0; i < fl.rows(); ++i)
        if (!done.count(fl.col("config_id").get_u64(i))) failed.insert(fl.col("config_id").get_u64(i));
      s.failures = fl.rows();
      s.failed_not_done = failed.size();
    }
  }
  const Contents attrs_only = [&] {
    Contents c;
    h5::Handle file = format::open_read(path);
    for (const char* a : {"format_version", "mergesweep_version", "git_revision", "spec_hash", "plan_hash", "host",
                          "ranks", "group_size", "start_time", "spec_text"})
      if (h5::has_attr(file, a)) c.attributes[a] = h5::read_attr_text(file, a, path);
    return c;
  }();
  s.attributes = attrs_only.attributes;
  s.writer_pid = LockFile::holder(path);
  s.open_flag = superblock_open_flag(path);
  return s;
}

namespace {

using Problems = std::vector<std::string>;

// Every committed /commits row is complete and the counts never decrease.
void verify_commits(const Rows& cm, int version, Problems& problems) {
  std::map<std::string, std::int64_t> prev;
  for (std::size_t i = 0; i < cm.rows(); ++i) {
    need(cm.col("seq").get_i64(i) == static_cast<std::int64_t>(i + 1), problems,
         "/commits/seq: row " + std::to_string(i) + " is " + std::to_string(cm.col("seq").get_i64(i)) + ", expected " +
             std::to_string(i + 1));
    for (const auto& t : format::tables(version)) {
      const std::int64_t v = cm.col(t.name).get_i64(i);
      if (v < prev[t.name])
        problems.push_back("/commits/" + t.name + ": row " + std::to_string(i) + " records " + std::to_string(v) +
                           " rows, fewer than the previous commit's " + std::to_string(prev[t.name]));
      prev[t.name] = v;
    }
  }
}

// The checkpoints' hashes are sha256 digests; returns the highest model number.
std::int32_t verify_checkpoints(const Rows& ck, Problems& problems) {
  std::int32_t models = 0;
  for (std::size_t i = 0; i < ck.rows(); ++i) {
    models = std::max(models, ck.col("model").get_i32(i));
    const std::string h = ck.col("sha256").get_str(i);
    need(h.size() == 64 && h.find_first_not_of("0123456789abcdef") == std::string::npos, problems,
         "/checkpoints/sha256: row " + std::to_string(i) + " is not a sha256 hex digest: '" + h + "'");
  }
  return models;
}

// Config ids unique, kinds known, members parse, match n and name checkpoints; returns the ids.
std::unordered_set<std::uint64_t> verify_configs(const Rows& cf, std::int32_t models, const std::string& path,
                                                 Problems& problems) {
  std::unordered_set<std::uint64_t> ids;
  for (std::size_t i = 0; i < cf.rows(); ++i) {
    const std::uint64_t id = cf.col("config_id").get_u64(i);
    const std::string where = "/configs row " + std::to_string(i) + " (config " + std::to_string(id) + ")";
    need(ids.insert(id).second, problems, where + ": duplicate config id");
    const std::string kind = cf.col("kind").get_str(i);
    need(kind == "base" || kind == "single" || kind == "merge", problems,
         where + ": kind '" + kind + "' is not base, single or merge");
    std::vector<std::int32_t> mem;
    try {
      mem = format::parse_members(cf.col("members").get_str(i), path);
    } catch (const Error& e) {
      problems.push_back(where + ": " + e.detail());
    }
    need(static_cast<std::int32_t>(mem.size()) == cf.col("n").get_i32(i), problems,
         where + ": n is " + std::to_string(cf.col("n").get_i32(i)) + " but members lists " + std::to_string(mem.size()));
    for (auto m : mem)
      need(m >= 1 && m <= models, problems,
           where + ": member " + std::to_string(m) + " is not a checkpoint of the archive (1.." + std::to_string(models) + ")");
  }
  return ids;
}

// Every per-config row references a committed config; one timing and at most one stats row each.
template <class ReadRows>
void verify_references(const ReadRows& rows, const std::unordered_set<std::uint64_t>& ids, int version,
                       Problems& problems) {
  std::unordered_map<std::uint64_t, int> timings, stats, prints;
  std::vector<const char*> tables = {"results", "model_stats", "probes", "timings"};
  if (version >= 2) tables.push_back("generations");
  if (version >= 4) tables.push_back("item_runs");
  if (version >= 5) tables.push_back("fingerprints");
  for (const char* t : tables) {
    const Rows r = rows(t);
    std::size_t orphans = 0;
    std::uint64_t first = 0;
    for (std::size_t i = 0; i < r.rows(); ++i) {
      const std::uint64_t id = r.col("config_id").get_u64(i);
      if (!ids.count(id)) {
        if (orphans++ == 0) first = id;
        continue;
      }
      if (std::string(t) == "timings") ++timings[id];
      if (std::string(t) == "model_stats") ++stats[id];
      if (std::string(t) == "fingerprints") ++prints[id];
    }
    if (orphans)
      problems.push_back("/" + std::string(t) + ": " + std::to_string(orphans) +
                         " committed rows reference configs that are not in /configs (first: config " +
                         std::to_string(first) + ")");
  }
  std::size_t no_timing = 0, multi = 0, multi_prints = 0;
  for (auto id : ids) {
    if (timings[id] != 1) ++no_timing;
    if (stats[id] > 1) ++multi;
    if (prints[id] > 1) ++multi_prints;
  }
  need(no_timing == 0, problems, "/timings: " + std::to_string(no_timing) + " configs do not have exactly one timing row");
  need(multi == 0, problems, "/model_stats: " + std::to_string(multi) + " configs have more than one row");
  need(multi_prints == 0, problems, "/fingerprints: " + std::to_string(multi_prints) + " configs have more than one row");
}

// Fingerprint rows name the dtype whose bytes were hashed: an eval dtype.
void verify_fingerprints(const Rows& fp, Problems& problems) {
  std::size_t bad = 0;
  std::string first;
  for (std::size_t i = 0; i < fp.rows(); ++i)
    if (!format::valid_fingerprint_dtype(fp.col("dtype").get_str(i)) && bad++ == 0)
      first = "row " + std::to_string(i) + ": '" + fp.col("dtype").get_str(i) + "'";
  need(bad == 0, problems, "/fingerprints/dtype: " + std::to_string(bad) + " rows not float32 or bfloat16 (first: " + first + ")");
}

// Generation rows: a known stop, an item index, runs inside the committed flat tables, each
// (config, task, item) once.
void verify_generations(const Rows& g, std::uint64_t tokens, std::uint64_t text, Problems& problems) {
  std::set<std::tuple<std::uint64_t, std::string, std::int64_t>> seen;
  std::size_t bad_stop = 0, bad_run = 0, dup = 0, bad_item = 0;
  std::string first;
  const auto note = [&](std::size_t& count, std::size_t i, const std::string& what) {
    if (count++ == 0 && first.empty()) first = "row " + std::to_string(i) + ": " + what;
  };
  for (std::size_t i = 0; i < g.rows(); ++i) {
    const std::string stop = g.col("stop").get_str(i);
    if (!format::valid_stop(stop)) note(bad_stop, i, "stop '" + stop + "'");
    const std::int64_t item = g.col("item").get_i64(i);
    if (item < 0) note(bad_item, i, "item " + std::to_string(item));
    const std::int64_t tb = g.col("tokens_begin").get_i64(i), nt = g.col("n_tokens").get_i32(i);
    const std::int64_t xb = g.col("text_begin").get_i64(i), nx = g.col("text_bytes").get_i32(i);
    if (tb < 0 || nt < 0 || static_cast<std::uint64_t>(tb + nt) > tokens || xb < 0 || nx < 0 ||
        static_cast<std::uint64_t>(xb + nx) > text)
      note(bad_run, i, "tokens [" + std::to_string(tb) + ", +" + std::to_string(nt) + ") of " + std::to_string(tokens) +
                           ", text [" + std::to_string(xb) + ", +" + std::to_string(nx) + ") of " + std::to_string(text));
    if (!seen.emplace(g.col("config_id").get_u64(i), g.col("task").get_str(i), item).second)
      note(dup, i, "config " + std::to_string(g.col("config_id").get_u64(i)) + " task " + g.col("task").get_str(i) +
                       " item " + std::to_string(item) + " repeated");
  }
  need(bad_stop == 0, problems, "/generations/stop: " + std::to_string(bad_stop) + " rows not until, stop_token or length");
  need(bad_item == 0, problems, "/generations/item: " + std::to_string(bad_item) + " negative item indices");
  need(bad_run == 0, problems, "/generations: " + std::to_string(bad_run) +
                                   " rows whose tokens or text lie outside the committed /generation_tokens or /generation_text");
  need(dup == 0, problems, "/generations: " + std::to_string(dup) + " repeated (config, task, item) rows");
  need(first.empty(), problems, "/generations: first problem at " + first);
}

// Failure rows: a known kind and a config row that parses (the same config may fail in several
// sessions, and may be in /configs once a later run succeeded).
void verify_failures(const Rows& fl, std::int32_t models, std::uint64_t sessions, const std::string& path,
                     Problems& problems) {
  std::size_t bad_kind = 0, bad_config = 0, bad_session = 0;
  std::string first;
  const std::set<std::string> kinds = {"error", "oom", "torch", "exception"};
  for (std::size_t i = 0; i < fl.rows(); ++i) {
    const std::string kind = fl.col("failure").get_str(i);
    if (!kinds.count(kind) && bad_kind++ == 0 && first.empty())
      first = "row " + std::to_string(i) + ": failure kind '" + kind + "'";
    const std::int32_t session = fl.col("session").get_i32(i);
    if ((session < 0 || static_cast<std::uint64_t>(session) >= sessions) && bad_session++ == 0 && first.empty())
      first = "row " + std::to_string(i) + ": session " + std::to_string(session) + " of " + std::to_string(sessions);
    try {
      for (auto m : format::parse_members(fl.col("members").get_str(i), path))
        if (m < 1 || m > models) throw Error(path, "members", "member " + std::to_string(m) + " is not a checkpoint");
    } catch (const Error& e) {
      if (bad_config++ == 0 && first.empty()) first = "row " + std::to_string(i) + ": " + e.detail();
    }
  }
  need(bad_kind == 0, problems,
       "/failures/failure: " + std::to_string(bad_kind) + " rows whose kind is not error, oom, torch or exception");
  need(bad_session == 0, problems, "/failures/session: " + std::to_string(bad_session) + " rows naming no /specs row");
  need(bad_config == 0, problems, "/failures/members: " + std::to_string(bad_config) + " rows naming no valid checkpoints");
  need(first.empty(), problems, "/failures: first problem at " + first);
}

std::string g17(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

// The /results values a task's per-item rows give: metric -> value, and the items (documents) they count.
std::map<std::string, double> totals_of(const ItemOutcomes& it) {
  if (it.kind == "rolling") {
    const eval::RollingMetrics m = eval::rolling_metrics(it.doc_loglik, it.doc_words, it.doc_bytes);
    return {{"word_perplexity", m.word_perplexity}, {"byte_perplexity", m.byte_perplexity},
            {"bits_per_byte", m.bits_per_byte}};
  }
  const auto n = static_cast<std::int64_t>(it.outcome.size());
  std::map<std::string, double> out;
  const std::pair<const char*, std::uint8_t> bits[] = {{"acc", ItemOutcomes::kAcc},
                                                       {"acc_norm", ItemOutcomes::kAccNorm},
                                                       {"acc_bytes", ItemOutcomes::kAccBytes},
                                                       {"exact_match", ItemOutcomes::kExactMatch}};
  for (const auto& [name, bit] : bits) {
    std::int64_t k = 0;
    for (auto o : it.outcome) k += (o & bit) != 0;
    out[name] = eval::count_mean(k, n);
  }
  return out;
}

// /item_runs rows: a known kind, a run inside the committed /items or /item_docs rows, each
// (config, task) once; /items rows: outcome bits of the four metrics only, chosen >= 0.
void verify_item_rows(const Rows& runs, const Rows& items, std::uint64_t docs, Problems& problems) {
  std::set<std::pair<std::uint64_t, std::string>> seen;
  std::size_t bad_kind = 0, bad_run = 0, dup = 0, bad_outcome = 0, bad_chosen = 0;
  for (std::size_t i = 0; i < runs.rows(); ++i) {
    const std::string kind = runs.col("kind").get_str(i);
    if (!format::valid_item_kind(kind)) ++bad_kind;
    const std::int64_t b = runs.col("begin").get_i64(i), n = runs.col("count").get_i64(i);
    const std::uint64_t avail = kind == "rolling" ? docs : items.rows();
    if (b < 0 || n < 0 || static_cast<std::uint64_t>(b + n) > avail) ++bad_run;
    if (!seen.emplace(runs.col("config_id").get_u64(i), runs.col("task").get_str(i)).second) ++dup;
  }
  for (std::size_t i = 0; i < items.rows(); ++i) {
    if (items.col("outcome").get_u8(i) > 15) ++bad_outcome;
    if (items.col("chosen").get_i32(i) < 0) ++bad_chosen;
  }
  need(bad_kind == 0, problems, "/item_runs/kind: " + std::to_string(bad_kind) + " rows not choice or rolling");
  need(bad_run == 0, problems, "/item_runs: " + std::to_string(bad_run) +
                                   " rows whose run lies outside the committed /items or /item_docs");
  need(dup == 0, problems, "/item_runs: " + std::to_string(dup) + " repeated (config, task) rows");
  need(bad_outcome == 0, problems, "/items/outcome: " + std::to_string(bad_outcome) + " values with bits other than 1, 2, 4, 8 set");
  need(bad_chosen == 0, problems, "/items/chosen: " + std::to_string(bad_chosen) + " negative choice indices");
}

// The totals in /results equal what the per-item rows add up to: every metric of a task with a
// run has the value its rows give (bit for bit: the same formula on the same counts) and counts
// the run's items or documents.
void verify_item_totals(const Contents& c, Problems& problems) {
  std::size_t wrong = 0, missing = 0;
  std::string first;
  for (const auto& cr : c.configs)
    for (const auto& it : cr.items) {
      const auto want = totals_of(it);
      std::size_t found = 0;
      for (const auto& r : cr.results) {
        const auto w = want.find(r.metric);
        if (r.task != it.task || w == want.end()) continue;
        ++found;
        const bool same = (r.value == w->second || (std::isnan(r.value) && std::isnan(w->second))) &&
                          r.n == static_cast<std::int64_t>(it.size());
        if (!same && wrong++ == 0)
          first = "config " + std::to_string(cr.config.id) + " task " + it.task + " " + r.metric + ": /results has " +
                  g17(r.value) + " over " + std::to_string(r.n) + ", the per-item rows give " + g17(w->second) +
                  " over " + std::to_string(it.size());
      }
      if (found == 0) ++missing;
    }
  need(wrong == 0, problems, "/results: " + std::to_string(wrong) +
                               " values differ from what /items and /item_docs add up to (first: " + first + ")");
  need(missing == 0, problems, "/item_runs: " + std::to_string(missing) + " runs whose task has no /results row");
}

}  // namespace

std::vector<std::string> verify(const std::string& path) {
  Problems problems;
  h5::Handle file = format::open_read(path);
  const h5::Handle& f = file;
  format::check_structure(f, path);
  std::uint64_t commit_rows = 0;
  const format::Commit c = format::last_commit(f, path, &commit_rows);
  verify_commits(format::read_rows(f, format::commits_table(c.version), static_cast<std::uint64_t>(c.seq), path), c.version,
                 problems);

  const std::string spec_text = h5::read_attr_text(f, "spec_text", path);
  const std::string spec_hash = h5::read_attr_text(f, "spec_hash", path);
  need(sha256_hex(spec_text.data(), spec_text.size()) == spec_hash, problems,
       "spec_hash attribute is not the sha256 of the spec_text attribute");

  auto rows = [&](const char* t) { return format::read_rows(f, format::table(t), c.counts.at(t), path); };
  const std::int32_t models = verify_checkpoints(rows("checkpoints"), problems);
  const auto ids = verify_configs(rows("configs"), models, path, problems);
  verify_references(rows, ids, c.version, problems);
  if (c.version >= 2)
    verify_generations(rows("generations"), c.counts.at("generation_tokens"), c.counts.at("generation_text"), problems);
  if (c.version >= 3) verify_failures(rows("failures"), models, c.counts.at("specs"), path, problems);
  if (c.version >= 5) verify_fingerprints(rows("fingerprints"), problems);
  if (c.version >= 4) {
    const std::size_t before = problems.size();
    verify_item_rows(rows("item_runs"), rows("items"), c.counts.at("item_docs"), problems);
    // The totals need the rows grouped by config (read() refuses runs outside the committed rows).
    try {
      if (problems.size() == before) verify_item_totals(read(path), problems);
    } catch (const Error& e) {
      problems.push_back("/item_runs: cannot compare with /results: " + e.detail());
    }
  }
  return problems;
}

MergeReport merge_archives(const std::vector<std::string>& inputs, const std::string& out) {
  if (inputs.empty()) fail("", "merge", "no input archives");
  if (fs::exists(out)) fail(out, "--out", "already exists; merge writes a new archive and never overwrites one");
  std::vector<Contents> all;
  all.reserve(inputs.size());
  for (const auto& in : inputs) all.push_back(read(in));
  const Contents& first = all.front();
  // Same plan: same plan_hash and the same checkpoint bytes (matched by model and file name).
  std::map<std::pair<int, std::string>, std::string> ref;
  for (const auto& k : first.checkpoints) ref[{k.model, fs::path(k.path).filename().string()}] = k.sha256;
  for (std::size_t i = 1; i < all.size(); ++i) {
    const auto& a = all[i];
    const std::string p0 = first.attributes.at("plan_hash"), pi = a.attributes.at("plan_hash");
    if (p0 != pi)
      fail(inputs[i], "plan_hash",
           "comes from a different plan than " + inputs[0] + " (plan_hash " + pi + " vs " + p0 +
               "); only archives of one plan can be merged");
    std::map<std::pair<int, std::string>, std::string> mine;
    for (const auto& k : a.checkpoints) mine[{k.model, fs::path(k.path).filename().string()}] = k.sha256;
    if (mine != ref)
      fail(inputs[i], "checkpoints",
           "checkpoint hashes differ from " + inputs[0] + " although plan_hash matches; refusing to merge");
  }
  const std::string tmp = out + ".tmp-merge-" + std::to_string(::getpid());
  MergeReport rep;
  try {
    auto w = Writer::open(tmp, provenance_of(first), first.checkpoints, first.tasks);
    std::vector<ConfigResult> batch;
    std::set<std::uint64_t> seen;
    for (const auto& a : all)
      for (const auto& r : a.configs) {
        if (!seen.insert(r.config.id).second) {
          ++rep.duplicates;
          continue;
        }
        batch.push_back(r);
        if (batch.size() >= 512) {
          w->append(batch);
          batch.clear();
        }
      }
    // Failed attempts of every input, as history (a config one slice failed may be done in another),
    // each attempt once: an input merged before, or named twice, repeats its rows.
    std::vector<FailureRecord> failures;
    std::set<std::tuple<std::uint64_t, std::string, std::string, std::int32_t, double>> attempts;
    for (const auto& a : all)
      for (const auto& f : a.failures)
        if (attempts.emplace(f.config.id, f.failure, f.message, f.group, f.time).second) failures.push_back(f);
    w->append(batch, failures);
    rep.configs = w->done().size();
    w->close();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  fs::rename(tmp, out);
  return rep;
}

}  // namespace ms::archive
