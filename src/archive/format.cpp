#include "format.hpp"

#include <algorithm>
#include <cmath>
#include <sys/stat.h>

#include "lock_file.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/model/arch_table.hpp"

namespace ms::archive::format {
namespace {

Column u64(const char* n) { return {n, Type::U64, 0}; }
Column i64(const char* n) { return {n, Type::I64, 0}; }
Column i32(const char* n) { return {n, Type::I32, 0}; }
Column u8(const char* n) { return {n, Type::U8, 0}; }
Column bulk(Column c) {
  c.chunk_bytes = 65536;
  return c;
}
Column f64(const char* n) { return {n, Type::F64, 0}; }
Column f32(const char* n) { return {n, Type::F32, 0}; }
// Per-item columns (tens of thousands of rows per config): 64 KiB chunks, shuffled and deflated.
Column packed(Column c) {
  c.chunk_bytes = 65536;
  c.compress = true;
  return c;
}
Column str(const char* n, std::size_t len) { return {n, Type::Str, len}; }

// String widths are part of the format (docs/formats.md): changing one needs a format_version bump.
std::vector<Table> make_tables() {
  std::vector<Table> t;
  t.push_back({"checkpoints", {i32("model"), str("name", 256), str("path", 4096), str("sha256", 64), u64("bytes")}});
  t.push_back({"tasks", {str("name", 256), str("kind", 16), str("path", 4096), str("sha256", 64), i64("items")}});
  t.push_back({"specs",
               {str("start_time", 32), str("spec_hash", 64), str("plan_hash", 64), str("version", 64),
                str("git_revision", 64), str("host", 256), i32("ranks"), i32("group_size"), str("spec_text", 65536)}});
  const std::vector<Column> config = {u64("config_id"), str("kind", 16), str("method", 64), str("params", 1024),
                                      i32("n"),          i32("sample"),     str("members", 1024)};
  t.push_back({"configs", config});
  t.push_back({"results",
               {u64("config_id"), str("task", 128), str("metric", 64), f64("value"), f64("stderr"), i64("n")}});
  std::vector<Column> stats = {u64("config_id"), f64("l2_from_base"), f64("cos_mean"), f64("cos_min"), f64("cos_max")};
  for (const auto& k : l2_kinds()) stats.push_back({"l2_" + k, Type::F64, 0});
  t.push_back({"model_stats", stats});
  t.push_back({"probes", {u64("config_id"), str("probe", 128), i32("layer"), f64("f1_mean"), f64("f1_std"), i32("seeds")}});
  t.push_back({"timings",
               {u64("config_id"), f64("merge_s"), f64("eval_s"), f64("probe_s"), f64("total_s"), i32("group")}});
  // Version 2: greedy generations (a row's ids and response bytes are runs of the two flat tables).
  t.push_back({"generations",
               {u64("config_id"), str("task", 128), i64("item"), str("stop", 16), i64("tokens_begin"), i32("n_tokens"),
                i64("text_begin"), i32("text_bytes")},
               2});
  // Bulk columns (hundreds of KiB per config): 64 KiB chunks keep the chunk index small (every
  // 4 KiB chunk is an index entry) at the price of rewriting one 64 KiB tail chunk per flush.
  t.push_back({"generation_tokens", {bulk(i32("token"))}, 2});
  t.push_back({"generation_text", {bulk(u8("byte"))}, 2});
  // Version 3: failed attempts (the config itself is not in /configs until a run succeeds).
  std::vector<Column> failure = config;
  for (const Column& c : {str("failure", 16), str("message", 1024), i32("group"), i32("session"), f64("time")})
    failure.push_back(c);
  t.push_back({"failures", failure, 3});
  // Version 4: per-item outcomes. One /item_runs row per config and scored task; its rows are a
  // run of /items (multiple_choice: one per item) or of /item_docs (rolling: one per document).
  t.push_back({"item_runs", {u64("config_id"), str("task", 128), str("kind", 16), i64("begin"), i64("count")}, 4});
  t.push_back({"items", {packed(u8("outcome")), packed(i32("chosen")), packed(f32("gold_loglik"))}, 4});
  t.push_back({"item_docs", {packed(f64("loglik")), packed(i64("tokens")), packed(i64("words")), packed(i64("bytes"))}, 4});
  // Version 5: the fingerprint of the model each config evaluated (at most one row per config).
  t.push_back({"fingerprints", {u64("config_id"), u64("fingerprint"), str("dtype", 16)}, 5});
  return t;
}

std::vector<Table> tables_of(int version) {
  std::vector<Table> out;
  for (const auto& t : make_tables())
    if (t.since <= version) out.push_back(t);
  return out;
}

Table make_commits(int version) {
  Table c{"commits", {i64("seq"), f64("time")}};
  for (const auto& t : tables(version)) c.columns.push_back(i64(t.name.c_str()));
  return c;
}

h5::Handle open_dataset(const h5::Handle& file, const Table& t, const Column& c, const std::string& path) {
  const std::string p = column_path(t, c);
  if (!h5::exists(file, "/" + t.name)) fail(path, "/" + t.name, "missing group: not a complete mergesweep archive");
  if (!h5::exists(file, p)) fail(path, p, "missing column dataset: not a complete mergesweep archive");
  return h5::open_dataset(file, p, path);
}

}  // namespace

const std::vector<std::string>& l2_kinds() { return model::tensor_kind_names(); }

const std::vector<Table>& tables(int version) {
  static const std::vector<Table> v1 = tables_of(1), v2 = tables_of(2), v3 = tables_of(3), v4 = tables_of(4),
                                  v5 = tables_of(5);
  static_assert(kFormatVersion == 5, "add the new version's tables here");
  if (version == 1) return v1;
  if (version == 2) return v2;
  if (version == 3) return v3;
  if (version == 4) return v4;
  if (version == 5) return v5;
  throw Error("", "format_version", "no archive format version " + std::to_string(version));
}

const Table& commits_table(int version) {
  static const Table v1 = make_commits(1), v2 = make_commits(2), v3 = make_commits(3), v4 = make_commits(4),
                     v5 = make_commits(5);
  if (version == 1) return v1;
  if (version == 2) return v2;
  if (version == 3) return v3;
  if (version == 4) return v4;
  if (version == 5) return v5;
  throw Error("", "format_version", "no archive format version " + std::to_string(version));
}

const Table& table(const std::string& name) {
  for (const auto& t : tables())
    if (t.name == name) return t;
  if (name == "commits") return commits_table();
  throw Error("", name, "no such archive table");
}

std::size_t elem_size(const Column& c) {
  switch (c.type) {
    case Type::U64:
    case Type::I64:
    case Type::F64:
      return 8;
    case Type::I32:
    case Type::F32:
      return 4;
    case Type::U8:
      return 1;
    case Type::Str:
      return c.len;
  }
  return 0;
}

h5::ElemType elem_type(const Column& c) {
  switch (c.type) {
    case Type::U64:
      return {h5::Elem::U64};
    case Type::I64:
      return {h5::Elem::I64};
    case Type::I32:
      return {h5::Elem::I32};
    case Type::U8:
      return {h5::Elem::U8};
    case Type::F64:
      return {h5::Elem::F64};
    case Type::F32:
      return {h5::Elem::F32};
    case Type::Str:
      break;
  }
  return {h5::Elem::FixedString, c.len};
}

// About 4 KiB per chunk (docs/formats.md, "Chunking and throughput"): partially filled chunks are
// rewritten at every flush, so smaller is cheaper per commit; larger means fewer chunk-index
// entries. Bulk columns use 64 KiB (Column::chunk_bytes).
std::size_t chunk_rows(const Column& c) {
  return std::clamp<std::size_t>(c.chunk_bytes / elem_size(c), 1, 65536);
}

void ColumnBuf::put(const void* p, std::size_t n) {
  const std::size_t at = data.size();
  data.resize(at + n);
  std::memcpy(data.data() + at, p, n);
  ++rows;
}

void ColumnBuf::put_many(const void* p, std::size_t count, std::size_t width) {
  if (count == 0) return;
  const std::size_t at = data.size();
  data.resize(at + count * width);
  std::memcpy(data.data() + at, p, count * width);
  rows += count;
}

void ColumnBuf::str(const std::string& s, const std::string& table, const std::string& file) {
  if (s.size() > col->len) {
    fail(file, "/" + table + "/" + col->name,
         std::to_string(s.size()) + "-byte value exceeds the archive's fixed width of " + std::to_string(col->len) +
             " bytes (value begins '" + s.substr(0, 40) + "')");
  }
  if (s.find('\0') != std::string::npos) fail(file, "/" + table + "/" + col->name, "value contains a NUL byte");
  const std::size_t at = data.size();
  data.resize(at + col->len, '\0');
  std::memcpy(data.data() + at, s.data(), s.size());
  ++rows;
}

std::string ColumnBuf::get_str(std::size_t i) const {
  const char* p = data.data() + i * col->len;
  return std::string(p, strnlen(p, col->len));
}

Rows::Rows(const Table& t) : table(&t) {
  for (const auto& c : t.columns) {
    cols.emplace_back();
    cols.back().col = &c;
  }
}

ColumnBuf& Rows::col(const std::string& name) {
  for (auto& c : cols)
    if (c.col->name == name) return c;
  throw Error("", table->name + "/" + name, "no such column");
}

const ColumnBuf& Rows::col(const std::string& name) const { return const_cast<Rows*>(this)->col(name); }

std::string column_path(const Table& t, const Column& c) { return "/" + t.name + "/" + c.name; }

void create_table(const h5::Handle& file, const Table& t, const std::string& path) {
  h5::Handle g = h5::create_group(file, "/" + t.name, path);
  std::string names;
  for (const auto& c : t.columns) names += (names.empty() ? "" : ",") + c.name;
  // Column order for readers that want the table as the writer sees it.
  h5::write_attr(g, "columns", names, path);
  for (const auto& c : t.columns) {
    // Fill values mark rows that were never written: /commits trusts only rows with seq > 0 and
    // counts >= 0, so a commit row seen half-written (one column on disk, another not) is skipped.
    const std::int64_t fill = -1;
    const bool marks_unwritten = t.name == "commits" && c.type == Type::I64 && c.name != "seq";
    h5::create_column(g, c.name, elem_type(c), chunk_rows(c), marks_unwritten ? &fill : nullptr, path,
                      column_path(t, c), c.compress);
  }
}

std::vector<std::uint64_t> column_lengths(const h5::Handle& file, const Table& t, const std::string& path) {
  std::vector<std::uint64_t> out;
  for (const auto& c : t.columns) out.push_back(h5::length_1d(open_dataset(file, t, c, path), path, column_path(t, c)));
  return out;
}

Rows read_rows(const h5::Handle& file, const Table& t, std::uint64_t n, const std::string& path) {
  Rows rows(t);
  for (auto& buf : rows.cols) {
    const Column& c = *buf.col;
    const std::string p = column_path(t, c);
    const h5::Handle d = open_dataset(file, t, c, path);
    const std::uint64_t len = h5::length_1d(d, path, p);
    if (len < n) fail(path, p, "has " + std::to_string(len) + " rows but the last commit records " + std::to_string(n));
    buf.data.assign(n * elem_size(c), '\0');
    buf.rows = n;
    h5::read_column(d, elem_type(c), 0, n, buf.data.data(), path, p);
  }
  return rows;
}

std::vector<h5::Handle> open_columns(const h5::Handle& file, const Table& t, const std::string& path) {
  std::vector<h5::Handle> out;
  for (const auto& c : t.columns) out.push_back(open_dataset(file, t, c, path));
  return out;
}

void write_rows(const std::vector<h5::Handle>& dsets, const Rows& rows, std::uint64_t offset, const std::string& path) {
  const Table& t = *rows.table;
  for (std::size_t k = 0; k < rows.cols.size(); ++k) {
    const auto& buf = rows.cols[k];
    h5::write_column(dsets.at(k), elem_type(*buf.col), offset, rows.rows(), buf.data.data(), path,
                     column_path(t, *buf.col));
  }
}

void write_rows(const h5::Handle& file, const Rows& rows, std::uint64_t offset, const std::string& path) {
  write_rows(open_columns(file, *rows.table, path), rows, offset, path);
}

Commit last_commit(const h5::Handle& file, const std::string& path, std::uint64_t* commit_rows_total) {
  const int version = format_version(file, path);
  const Table& ct = commits_table(version);
  const auto lens = column_lengths(file, ct, path);
  const std::uint64_t n = *std::min_element(lens.begin(), lens.end());
  if (commit_rows_total) *commit_rows_total = *std::max_element(lens.begin(), lens.end());
  std::map<std::string, std::uint64_t> data_len;
  for (const auto& t : tables(version)) {
    const auto l = column_lengths(file, t, path);
    data_len[t.name] = *std::min_element(l.begin(), l.end());
  }
  const Rows rows = read_rows(file, ct, n, path);
  for (std::uint64_t i = n; i-- > 0;) {
    Commit c;
    c.version = version;
    c.seq = rows.col("seq").get_i64(i);
    c.time = rows.col("time").get_f64(i);
    if (c.seq != static_cast<std::int64_t>(i + 1)) continue;
    bool ok = true;
    for (const auto& t : tables()) c.counts[t.name] = 0;  // tables the archive's version lacks: none
    for (const auto& t : tables(version)) {
      const std::int64_t v = rows.col(t.name).get_i64(i);
      if (v < 0 || static_cast<std::uint64_t>(v) > data_len[t.name]) ok = false;
      c.counts[t.name] = v < 0 ? 0 : static_cast<std::uint64_t>(v);
    }
    if (ok) return c;
  }
  fail(path, "/commits", "no complete commit: the archive was never committed (killed while being created?)");
}

int format_version(const h5::Handle& file, const std::string& path) {
  if (!h5::has_attr(file, "format_version"))
    fail(path, "format_version", "root attribute missing: not a mergesweep archive");
  const std::string v = h5::read_attr_text(file, "format_version", path);
  for (int k = 1; k <= kFormatVersion; ++k)
    if (v == std::to_string(k)) return k;
  fail(path, "format_version", "archive format version " + v + " is not supported (this mergesweep reads versions 1 to " +
                                   std::to_string(kFormatVersion) + ")");
}

int check_structure(const h5::Handle& file, const std::string& path) {
  const int version = format_version(file, path);
  for (const char* a : {"plan_hash", "spec_text", "spec_hash"})
    if (!h5::has_attr(file, a)) fail(path, a, "root attribute missing: not a complete mergesweep archive");
  for (const auto& t : tables(version)) column_lengths(file, t, path);
  column_lengths(file, commits_table(version), path);
  return version;
}

namespace {

// A writer killed between opening the file and starting SWMR leaves the superblock marked "open
// for write" (non-SWMR), which no reader can open. With the writer lock free, nobody is writing:
// clear the mark as `h5clear -s` does (the data below the last commit is untouched).
bool clear_stale_mark(const std::string& path) {
  LockFile lock = LockFile::acquire(path);
  std::string err;
  h5::Handle f = h5::try_open_rdwr(path, /*clear_status_flags=*/true, err);
  if (!f.valid()) return false;
  // Closing a file opened for write truncates it to its end-of-allocation address, and the one in
  // the superblock can lag the data (a writer killed mid-flush, then a writer killed before SWMR
  // started): truncating there cut off chunks and index blocks the dead writers had written, so
  // the next writer failed with "addr overflow". Raise the EOA to the end of file first.
  if (!h5::raise_eoa_to_end_of_file(f, /*round_to_page=*/false)) return false;
  try {
    h5::close_file(f, path, "cannot close the archive");
  } catch (const Error&) {
    return false;
  }
  return true;
}

}  // namespace

h5::Handle try_open_read(const std::string& path, std::string& err) {
  // A SWMR reader retries a metadata block whose checksum fails (a writer may be rewriting it),
  // sleeping 1 ns, 2 ns, 4 ns, ... up to 100 times: on a block that stays bad (a writer killed in
  // the middle of writing it) that never ends. 26 attempts wait about 0.1 s in all, then fail.
  h5::Handle f = h5::try_open_read(path, 26, err);
  if (f.valid()) return f;
  std::string plain;
  f = h5::try_open_read(path, 0, plain);
  if (!f.valid() && !plain.empty()) err = plain;
  return f;
}

h5::Handle open_read(const std::string& path) {
  h5::silence_errors();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) fail(path, "", "no such file");
  if (S_ISDIR(st.st_mode)) fail(path, "", "is a folder, expected an archive (.h5 file)");
  std::string err;
  h5::Handle f = try_open_read(path, err);
  if (f.valid()) return f;
  if (!h5::is_hdf5(path)) fail(path, "", "not an HDF5 file (no HDF5 signature): expected a mergesweep archive");
  if (err.find("open for write") != std::string::npos || err.find("SWMR writing") != std::string::npos) {
    if (LockFile::holder(path) != 0)
      fail(path, "", "a writer is opening this archive right now; retry in a moment");
    try {
      if (clear_stale_mark(path)) {
        f = try_open_read(path, err);
        if (f.valid()) return f;
      }
    } catch (const Error&) {
      fail(path, "", "a writer is opening this archive right now; retry in a moment");
    }
  }
  fail(path, "", "cannot open the HDF5 file (damaged or truncated?): " + err);
}

std::string members_text(const std::vector<std::int32_t>& m) {
  std::string s;
  for (std::size_t i = 0; i < m.size(); ++i) s += (i ? "," : "") + std::to_string(m[i]);
  return s;
}

std::vector<std::int32_t> parse_members(const std::string& s, const std::string& path) {
  std::vector<std::int32_t> out;
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    try {
      std::size_t used = 0;
      const std::string part = s.substr(i, j - i);
      out.push_back(std::stoi(part, &used));
      if (used != part.size()) throw std::invalid_argument(part);
    } catch (const std::exception&) {
      fail(path, "/configs/members", "'" + s + "' is not a comma-separated list of integers");
    }
    i = j + 1;
  }
  return out;
}

}  // namespace ms::archive::format
