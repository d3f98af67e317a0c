// Writer: creates or resumes an archive, appends batches under the /commits protocol (see the
// header and docs/formats.md), runs SWMR so readers can follow along.
#include "mergesweep/archive/archive.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "batch.hpp"
#include "format.hpp"
#include "h5/h5.hpp"
#include "lock_file.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::archive {
namespace {

using format::Rows;

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A SIGKILL can cut a write() between two memory pages (the kernel checks for fatal signals page
// by page), so a metadata block that straddles a 4 KiB boundary can be left half old, half new:
// its checksum then fails forever and what it indexes (committed rows too) is lost. Paged file
// space keeps every metadata block smaller than a page inside one page.
constexpr std::size_t kPage = 4096;

// HDF5 (1.10.7+) holds a shared flock on the file while a reader opens it, even a SWMR reader: a
// reader opening the file at this moment makes a write open fail with "unable to lock file".
// It lets go within milliseconds, so retry for 2 s (a reader without SWMR keeps it: then fail).
h5::Handle open_rdwr(const std::string& path, bool clear_status_flags, std::string& err) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (true) {
    h5::Handle f = h5::try_open_rdwr(path, clear_status_flags, err);
    if (f.valid()) return f;
    if (err.find("unable to lock file") == std::string::npos || std::chrono::steady_clock::now() >= deadline) return f;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string file_name(const std::string& p) { return std::filesystem::path(p).filename().string(); }

// Written once, when the archive is created (attributes cannot change under SWMR).
void write_root_attributes(const h5::Handle& f, const Provenance& p, const std::string& path) {
  h5::write_attr(f, "format_version", static_cast<std::int64_t>(kFormatVersion), path);
  h5::write_attr(f, "mergesweep_version", p.version, path);
  h5::write_attr(f, "git_revision", p.git_revision, path);
  h5::write_attr(f, "spec_text", p.spec_text, path);
  h5::write_attr(f, "spec_hash", p.spec_hash, path);
  h5::write_attr(f, "plan_hash", p.plan_hash, path);
  h5::write_attr(f, "host", p.host, path);
  h5::write_attr(f, "ranks", static_cast<std::int64_t>(p.ranks), path);
  h5::write_attr(f, "group_size", static_cast<std::int64_t>(p.group_size), path);
  h5::write_attr(f, "start_time", p.start_time, path);
}

Rows spec_row(const Provenance& p, const std::string& path) {
  Rows r(format::table("specs"));
  r.col("start_time").str(p.start_time, "specs", path);
  r.col("spec_hash").str(p.spec_hash, "specs", path);
  r.col("plan_hash").str(p.plan_hash, "specs", path);
  r.col("version").str(p.version, "specs", path);
  r.col("git_revision").str(p.git_revision, "specs", path);
  r.col("host").str(p.host, "specs", path);
  r.col("ranks").i32(p.ranks);
  r.col("group_size").i32(p.group_size);
  r.col("spec_text").str(p.spec_text, "specs", path);
  return r;
}

Rows checkpoint_rows(const std::vector<CheckpointRecord>& cs, const std::string& path) {
  Rows r(format::table("checkpoints"));
  for (const auto& c : cs) {
    r.col("model").i32(c.model);
    r.col("name").str(c.name, "checkpoints", path);
    r.col("path").str(c.path, "checkpoints", path);
    r.col("sha256").str(c.sha256, "checkpoints", path);
    r.col("bytes").u64(c.bytes);
  }
  return r;
}

Rows task_rows(const std::vector<TaskRecord>& ts, const std::string& path) {
  Rows r(format::table("tasks"));
  for (const auto& t : ts) {
    r.col("name").str(t.name, "tasks", path);
    r.col("kind").str(t.kind, "tasks", path);
    r.col("path").str(t.path, "tasks", path);
    r.col("sha256").str(t.sha256, "tasks", path);
    r.col("items").i64(t.items);
  }
  return r;
}

// Checkpoint files are matched by (model, file name): paths may move between runs, bytes may not.
void check_same_checkpoints(const Rows& old, const std::vector<CheckpointRecord>& now, const std::string& path) {
  std::map<std::pair<int, std::string>, std::pair<std::string, std::string>> before;  // -> (name, sha)
  for (std::size_t i = 0; i < old.rows(); ++i)
    before[{old.col("model").get_i32(i), file_name(old.col("path").get_str(i))}] = {old.col("name").get_str(i),
                                                                                     old.col("sha256").get_str(i)};
  for (const auto& c : now) {
    const auto it = before.find({c.model, file_name(c.path)});
    if (it == before.end())
      fail(path, "checkpoints",
           "checkpoint " + std::to_string(c.model) + " (" + c.name + ") file " + file_name(c.path) +
               " is not in the archive's checkpoint list: the archive was made from different checkpoints");
    if (it->second.second != c.sha256)
      fail(path, "checkpoints",
           "checkpoint " + std::to_string(c.model) + " (" + c.name + ") file " + c.path +
               " changed since the archive was written: sha256 was " + it->second.second + ", now " + c.sha256);
  }
  if (before.size() != now.size())
    fail(path, "checkpoints",
         "the archive records " + std::to_string(before.size()) + " checkpoint files, the spec has " +
             std::to_string(now.size()));
}

void check_same_tasks(const Rows& old, const std::vector<TaskRecord>& now, const std::string& path) {
  std::map<std::string, std::string> before;
  for (std::size_t i = 0; i < old.rows(); ++i) before[old.col("name").get_str(i)] = old.col("sha256").get_str(i);
  for (const auto& t : now) {
    const auto it = before.find(t.name);
    if (it == before.end())
      fail(path, "tasks", "task '" + t.name + "' is not in the archive's eval set: the archive was made for another eval set");
    if (it->second != t.sha256)
      fail(path, "tasks", "task '" + t.name + "' (" + t.path + ") changed since the archive was written: sha256 was " +
                              it->second + ", now " + t.sha256);
  }
  if (before.size() != now.size())
    fail(path, "tasks", "the archive records " + std::to_string(before.size()) + " tasks, the spec has " +
                            std::to_string(now.size()));
}

// A writer appends only to an archive of its own version (the tables and /commits columns differ).
void refuse_other_version(int version, const std::string& path) {
  if (version == kFormatVersion) return;
  fail(path, "format_version",
       "the archive has format version " + std::to_string(version) + " and this mergesweep writes version " +
           std::to_string(kFormatVersion) + ": it can read the archive but not append to it; write to a new archive");
}

}  // namespace

struct Writer::Impl {
  std::string path;
  LockFile lock;
  h5::Handle file;
  std::map<std::string, std::uint64_t> rows;  // committed row counts
  std::int64_t seq = 0;                        // rows in /commits
  std::set<std::uint64_t> done;
  std::map<std::string, std::vector<h5::Handle>> dsets;  // opened once SWMR has started

  // Builds the empty archive (root attributes, tables, the first rows) under a temporary name,
  // so a kill during creation leaves no half file, opens it for writing and only then renames it
  // to `path`: a reader that polls `path` can never hold the file between creation and the write
  // open (its shared lock would make the write open fail).
  void create(const Provenance& prov, const std::vector<Rows>& first_rows);
  // Checks the open archive belongs to this plan and loads what is committed: row counts, the
  // commit sequence, the done config ids.
  void load_committed(const Provenance& prov, const std::vector<CheckpointRecord>& checkpoints,
                      const std::vector<TaskRecord>& tasks);

  void write(const Rows& r, std::uint64_t offset) {
    const auto it = dsets.find(r.table->name);
    if (it != dsets.end()) format::write_rows(it->second, r, offset, path);
    else format::write_rows(file, r, offset, path);
  }

  void commit() {
    Rows c(format::commits_table());
    c.col("seq").i64(seq + 1);
    c.col("time").f64(now_unix());
    for (const auto& t : format::tables()) c.col(t.name).i64(static_cast<std::int64_t>(rows[t.name]));
    write(c, static_cast<std::uint64_t>(seq));
    h5::flush(file, path, "/commits");
    ++seq;
  }

  // Writes the tables' new rows, flushes, then commits: the data is on disk before the commit row.
  void append_tables(const std::vector<Rows>& tabs) {
    for (const auto& r : tabs) write(r, rows[r.table->name]);
    h5::flush(file, path, "");
    std::map<std::string, std::uint64_t> saved = rows;
    for (const auto& r : tabs) rows[r.table->name] += r.rows();
    try {
      commit();
    } catch (...) {
      rows = saved;  // the next append overwrites the uncommitted rows
      throw;
    }
  }
};

Writer::Writer() : impl_(std::make_unique<Impl>()) {}
Writer::~Writer() {
  try {
    close();
  } catch (...) {
  }
}

const std::set<std::uint64_t>& Writer::done() const { return impl_->done; }

namespace {

// (Re)opens for writing. A writer that was killed leaves the superblock marked "open for
// write"; we hold the lock, so no writer is alive: clear the mark as `h5clear -s` would.
h5::Handle open_for_writing(const std::string& path) {
  std::string first, second;
  h5::Handle f = open_rdwr(path, /*clear_status_flags=*/false, first);
  if (f.valid()) return f;
  f = open_rdwr(path, /*clear_status_flags=*/true, second);
  if (f.valid()) return f;
  if (!h5::is_hdf5(path)) fail(path, "", "not an HDF5 file: expected a mergesweep archive");
  fail(path, "", "cannot open the archive for writing (is another program reading it without SWMR?): " + first);
}

}  // namespace

void Writer::Impl::create(const Provenance& prov, const std::vector<Rows>& first_rows) {
  Impl& m = *this;
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  try {
    m.file = h5::create_paged_latest(tmp, kPage, path);
    write_root_attributes(m.file, prov, path);
    for (const auto& t : format::tables()) format::create_table(m.file, t, path);
    format::create_table(m.file, format::commits_table(), path);
    for (const auto& t : format::tables()) m.rows[t.name] = 0;
    m.append_tables(first_rows);
    h5::close_file(m.file, path, "cannot close the new archive");
    m.file = open_for_writing(tmp);  // nobody else knows this name: no reader holds it
    std::filesystem::rename(tmp, path);
  } catch (...) {
    m.file.close();
    std::remove(tmp.c_str());
    throw;
  }
}

void Writer::Impl::load_committed(const Provenance& prov, const std::vector<CheckpointRecord>& checkpoints,
                                  const std::vector<TaskRecord>& tasks) {
  Impl& m = *this;
  const h5::Handle& f = m.file;
  // A writer killed mid-flush can leave chunk-index entries (of uncommitted rows) pointing past
  // the end-of-allocation address its superblock recorded; overwriting those rows then fails with
  // "addr overflow". The chunks' data precede their index entries on disk, so raising the EOA to
  // the physical end of file (as h5clear --increment does) covers them.
  if (!h5::raise_eoa_to_end_of_file(f, /*round_to_page=*/true))
    h5::fail(path, "", "cannot adjust the end-of-file address");
  refuse_other_version(format::check_structure(f, path), path);
  const std::string old_plan = h5::read_attr_text(f, "plan_hash", path);
  if (old_plan != prov.plan_hash)
    fail(path, "plan_hash",
         "the archive was written for a different plan (base, checkpoints or eval set): its plan_hash is " + old_plan +
             ", this spec's is " + prov.plan_hash + "; write to a new archive");
  std::uint64_t commit_rows = 0;
  const format::Commit c = format::last_commit(f, path, &commit_rows);
  m.rows = c.counts;
  m.seq = c.seq;
  check_same_checkpoints(format::read_rows(f, format::table("checkpoints"), m.rows["checkpoints"], path), checkpoints, path);
  check_same_tasks(format::read_rows(f, format::table("tasks"), m.rows["tasks"], path), tasks, path);
  const Rows ids = format::read_rows(f, format::table("configs"), m.rows["configs"], path);
  for (std::size_t i = 0; i < ids.rows(); ++i) m.done.insert(ids.col("config_id").get_u64(i));
}

std::unique_ptr<Writer> Writer::open(const std::string& path, const Provenance& prov,
                                     const std::vector<CheckpointRecord>& checkpoints,
                                     const std::vector<TaskRecord>& tasks) {
  h5::silence_errors();
  std::unique_ptr<Writer> w(new Writer());
  Impl& m = *w->impl_;
  m.path = path;
  // Validate every string before touching the disk.
  const Rows ck = checkpoint_rows(checkpoints, path), tk = task_rows(tasks, path), sp = spec_row(prov, path);
  m.lock = LockFile::acquire(path, 2.0);

  const bool fresh = !std::filesystem::exists(path);
  if (fresh) {
    m.create(prov, {ck, tk, sp});  // leaves m.file open for writing
  } else {
    // Check it is an archive before opening it for writing (never modify a foreign HDF5 file). A
    // file that cannot be opened for reading is left to the write-open below, which clears a dead
    // writer's mark or reports why it cannot open the file.
    std::string err;
    h5::Handle probe = format::try_open_read(path, err);
    if (probe.valid()) refuse_other_version(format::check_structure(probe, path), path);
  }
  if (!fresh) m.file = open_for_writing(path);
  m.load_committed(prov, checkpoints, tasks);
  // Rows a killed writer left after its last commit stay until the next appends overwrite them
  // (appends start at the committed counts); readers never trust them.
  h5::start_swmr_write(m.file, path);
  for (const auto& t : format::tables()) m.dsets[t.name] = format::open_columns(m.file, t, path);
  m.dsets["commits"] = format::open_columns(m.file, format::commits_table(), path);
  // A resumed session: /specs gets one row per writer session (the root attributes stay those
  // of the session that created the archive).
  if (!fresh) m.append_tables({sp});
  return w;
}

void Writer::append(const std::vector<ConfigResult>& batch, const std::vector<FailureRecord>& failures) {
  Impl& m = *impl_;
  if (!m.file.valid()) fail(m.path, "", "archive writer is closed");
  h5::silence_errors();  // per thread: the coordinator's thread appends to a file opened elsewhere
  format::Batch rows(m.path, m.rows);
  std::set<std::uint64_t> added;
  for (const auto& cr : batch) {
    if (m.done.count(cr.config.id) || !added.insert(cr.config.id).second) continue;  // de-duplication on write
    rows.add(cr);
  }
  // This session is the last /specs row (one per writer session).
  const auto session = static_cast<std::int32_t>(m.rows["specs"]) - 1;
  for (auto f : failures) {
    f.session = session;
    rows.add_failure(f);
  }
  if (added.empty() && failures.empty()) return;
  try {
    m.append_tables(rows.tables());
  } catch (const Error& e) {
    // One clear line for a full disk: what was being committed, and that the rest is safe.
    if (std::string(e.what()).find(h5::kNoSpace) == std::string::npos) throw;
    fail(m.path, "", std::string(h5::kNoSpace) + " while committing " + std::to_string(added.size()) + " configs to " +
                         m.path + "; every config committed before is safe: free space (or move the archive) and "
                         "rerun the same command to resume");
  }
  m.done.insert(added.begin(), added.end());
}

void Writer::close() {
  Impl& m = *impl_;
  if (!m.file.valid()) return;
  h5::silence_errors();
  m.dsets.clear();
  try {
    h5::close_file(m.file, m.path, "cannot close the archive");  // a failed close is not retried
  } catch (...) {
    m.lock.release();
    throw;
  }
  m.lock.release();
}

}  // namespace ms::archive
