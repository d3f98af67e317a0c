// The archive across processes: a second writer elsewhere is refused, a SIGKILLed writer leaves a
// readable and resumable file, readers in other processes see only consistent committed data.
#include <gtest/gtest.h>
#include <signal.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "archive/archive_fixture.hpp"
#include "common/test_util.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/archive/tools.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::archive {
namespace {

using namespace ms::archive::test;

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Every committed config complete and correct, ids exactly 0..n-1 in order (append order).
std::string consistent(const Contents& c) {
  for (std::size_t i = 0; i < c.configs.size(); ++i) {
    if (c.configs[i].config.sample != static_cast<int>(i)) return "config " + std::to_string(i) + " out of order";
    const std::string e = check_config(c.configs[i]);
    if (!e.empty()) return e;
  }
  return "";
}

TEST(ArchiveProcesses, WriterInAnotherProcessIsRefused) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
  w->append(make_batch(0, 2));
  const pid_t pid = ::fork();
  if (pid == 0) {
    try {
      Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    } catch (const Error& e) {
      _exit(std::string(e.what()).find("another process is writing this archive (pid " + std::to_string(::getppid())) !=
                    std::string::npos
                ? 0
                : 2);
    }
    _exit(1);
  }
  EXPECT_EQ(wait_exit(pid), 0) << "the child must be refused, naming the holder's pid";
  w->append(make_batch(2, 1));
  w->close();
  EXPECT_EQ(read(path).configs.size(), 3u);
}

TEST(ArchiveProcesses, SigkilledWriterLeavesAReadableResumableArchive) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  std::mt19937 rng(20261123);
  std::size_t expected_min = 0, tails = 0;
  for (int trial = 0; trial < 8; ++trial) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      try {
        auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
        for (int next = static_cast<int>(w->done().size());; next += 40) w->append(make_batch(next, 40));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "writer failed: %s\n", e.what());
        _exit(3);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 600)(rng)));
    ::kill(pid, SIGKILL);
    ASSERT_EQ(wait_exit(pid), 128 + SIGKILL) << "the writer must still be running when killed";
    if (!std::filesystem::exists(path)) continue;  // killed before the archive first appeared
    const Contents c = read(path);
    EXPECT_EQ(consistent(c), "") << "trial " << trial;
    EXPECT_GE(c.configs.size(), expected_min) << "committed configs never disappear";
    expected_min = c.configs.size();
    EXPECT_TRUE(verify(path).empty()) << "trial " << trial;
    const Summary s = summarize(path);
    EXPECT_EQ(s.writer_pid, 0) << "the dead writer's lock is gone";
    for (const auto& [t, n] : s.rows) tails += s.stored.at(t) > n;
  }
  // How many kills landed inside an append (rows written, commit missing); informative only.
  RecordProperty("tables_with_uncommitted_tail", static_cast<int>(tails));
  std::printf("kills that left an uncommitted tail: %zu table(s) over 8 trials\n", tails);
  ASSERT_TRUE(std::filesystem::exists(path));
  // Resume: the done set is exactly the committed configs; appending continues cleanly.
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    EXPECT_EQ(w->done().size(), expected_min);
    const int n = static_cast<int>(w->done().size());
    w->append(make_batch(std::max(0, n - 5), 10));  // overlaps the committed tail: de-duplicated
  }
  const Contents c = read(path);
  EXPECT_EQ(c.configs.size(), expected_min + 5);
  EXPECT_EQ(consistent(c), "");
  EXPECT_TRUE(verify(path).empty());
  EXPECT_FALSE(summarize(path).open_flag) << "a clean close clears the superblock's open-for-write mark";
}

// Reader loop run in a forked child: returns the exit status (0 ok, 1 inconsistent, 2 never saw data).
int reader_child(const std::string& path, int reads) {
  std::size_t last = 0;
  int ok_reads = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (ok_reads < reads && std::chrono::steady_clock::now() < deadline) {
    Contents c;
    try {
      c = read(path);
    } catch (const Error&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // not created yet, or being reopened
      continue;
    }
    if (!consistent(c).empty() || c.configs.size() < last) return 1;
    last = c.configs.size();
    if (last > 0) ++ok_reads;
  }
  return ok_reads >= reads ? 0 : 2;
}

TEST(ArchiveProcesses, ReadersInOtherProcessesSeeOnlyCommittedConsistentData) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  // Fork the readers before the writer opens the file: a child must not inherit open HDF5 files.
  const pid_t c_reader = ::fork();
  // 12 reads each: every read loads the whole (growing) archive, slow in a sanitizer build.
  if (c_reader == 0) _exit(reader_child(path, 12));
  const std::string py = ms::test::source_path(".venv/bin/python");
  const std::string script = ms::test::source_path("tests/archive/swmr_reader.py");
  pid_t py_reader = -1;
  if (::access(py.c_str(), X_OK) == 0 &&
      std::system(("'" + py + "' -c 'import h5py, numpy' >/dev/null 2>&1").c_str()) == 0) {
    py_reader = ::fork();
    if (py_reader == 0) {
      ::execl(py.c_str(), py.c_str(), script.c_str(), path.c_str(), "12", std::to_string(kTasks * 2).c_str(),
              static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    int next = 0;
    // Keep appending until both readers are done (bounded).
    for (int round = 0; round < 20000; ++round) {
      w->append(make_batch(next, 7));
      next += 7;
      int st;
      const bool c_done = ::waitpid(c_reader, &st, WNOHANG) == c_reader;
      if (c_done) {
        EXPECT_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0) << "C reader";
        if (py_reader > 0) {
          EXPECT_EQ(wait_exit(py_reader), 0) << "h5py reader";
        }
        py_reader = -2;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  EXPECT_EQ(py_reader, -2) << "the readers did not finish";
  if (py_reader != -2) {
    ::kill(c_reader, SIGKILL);
    wait_exit(c_reader);
    if (py_reader > 0) ::kill(py_reader, SIGKILL), wait_exit(py_reader);
  }
  EXPECT_TRUE(verify(path).empty());
}

}  // namespace
}  // namespace ms::archive

namespace ms::archive {
namespace {

using namespace ms::archive::test;

// A writer killed after opening the file for write but before SWMR started leaves the superblock
// marked "open for write" (non-SWMR): plain HDF5 readers refuse it. read() and Writer::open must
// clear that stale mark (no writer holds the lock) and see every committed row.
TEST(ArchiveProcesses, WriterKilledBeforeSwmrStartedLeavesNoUnreadableFile) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  Writer::open(path, make_prov(), make_checkpoints(), make_tasks())->append(make_batch(0, 5));
  const pid_t pid = ::fork();
  if (pid == 0) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    if (H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl) < 0) _exit(3);
    ::raise(SIGKILL);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child could not open the file for write";
  EXPECT_TRUE(summarize(path).open_flag == false) << "summarize (a reader) cleared the stale mark";
  const Contents c = read(path);
  EXPECT_EQ(c.configs.size(), 5u);
  for (const auto& r : c.configs) EXPECT_EQ(check_config(r), "");
  EXPECT_EQ(Writer::open(path, make_prov(), make_checkpoints(), make_tasks())->done().size(), 5u);
}

}  // namespace
}  // namespace ms::archive

// Exported by libhdf5 (the superblock's checksum) but not declared in its public headers.
extern "C" std::uint32_t H5_checksum_lookup3(const void* key, std::size_t length, std::uint32_t initval);

namespace ms::archive {
namespace {

using namespace ms::archive::test;

// What two kills in a row can leave: a writer killed mid-flush (its data reaches past the
// end-of-allocation address in the superblock), then a writer killed before SWMR started (the
// "open for write" mark). Clearing the mark opens the file for write and closes it, and HDF5
// truncates a closed write handle's file at the EOA: that cut off the dead writer's chunks (the
// next writer failed with "addr overflow"). Built by hand here, so the test is deterministic.
TEST(ArchiveProcesses, ClearingAStaleMarkNeverTruncatesBelowTheEndOfFile) {
  ms::test::TempDir tmp;
  const std::string path = tmp / "a.h5";
  std::uint64_t eoa_after_first = 0;
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    w->append(make_batch(0, 40));
    eoa_after_first = std::filesystem::file_size(path);
    w->append(make_batch(40, 40));
  }
  const std::uint64_t size = std::filesystem::file_size(path);
  ASSERT_GT(size, eoa_after_first);
  {
    // Superblock v3: status flags at byte 11, end-of-allocation address at 28, checksum of bytes
    // 0..43 at 44.
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    unsigned char sb[48];
    ASSERT_TRUE(io.read(reinterpret_cast<char*>(sb), sizeof sb));
    ASSERT_EQ(sb[8], 3) << "superblock version";
    sb[11] = 0x01;  // open for write, not SWMR: SWMR readers refuse the file
    std::memcpy(sb + 28, &eoa_after_first, 8);
    const std::uint32_t sum = H5_checksum_lookup3(sb, 44, 0);
    std::memcpy(sb + 44, &sum, 4);
    io.seekp(0);
    ASSERT_TRUE(io.write(reinterpret_cast<const char*>(sb), sizeof sb));
  }
  const Contents c = read(path);  // clears the stale mark
  EXPECT_EQ(std::filesystem::file_size(path), size) << "clearing the mark truncated the file";
  EXPECT_EQ(c.configs.size(), 80u);
  {
    auto w = Writer::open(path, make_prov(), make_checkpoints(), make_tasks());
    EXPECT_EQ(w->done().size(), 80u);
    w->append(make_batch(80, 10));
  }
  const Contents after = read(path);
  ASSERT_EQ(after.configs.size(), 90u);
  for (const auto& r : after.configs) EXPECT_EQ(check_config(r), "");
  EXPECT_TRUE(verify(path).empty());
}

}  // namespace
}  // namespace ms::archive
