// The agreement around a communicator's set-up (nccl_comm.hpp): a timed, non-blocking allreduce
// of one slot per rank, so a rank that failed before the set-up ends every rank with its message
// and a rank that never arrives ends the others after the timeout instead of a hang. Built
// without CUDA as well: its tests need no GPU.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mergesweep/core/error.hpp"
#include "mergesweep/dist/check.hpp"
#include "mergesweep/dist/nccl_comm.hpp"

namespace ms::dist {
namespace {

// What a pending MPI_Iallreduce writes into: it must live until the collective completes, which
// after a timeout may be never (or after this function threw), so it is left to leak then.
struct Pending {
  std::vector<std::int64_t> send, recv;
  MPI_Request req = MPI_REQUEST_NULL;
};

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", s);
  return buf;
}

}  // namespace

SetupTimeout::SetupTimeout(const std::string& detail) : Error("", "nccl", detail) {}

namespace detail {

void agree_on_setup(MPI_Comm comm, const std::string& local_error, double timeout_s, const std::string& stage) {
  int rank = 0, size = 1;
  MS_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  MS_MPI_CHECK(MPI_Comm_size(comm, &size));
  auto p = std::make_unique<Pending>();
  p->send.assign(static_cast<std::size_t>(size), 0);
  p->recv.assign(static_cast<std::size_t>(size), 0);
  p->send[static_cast<std::size_t>(rank)] = local_error.empty() ? 1 : 2;  // 1: here and fine, 2: here and failed
  MS_MPI_CHECK(MPI_Iallreduce(p->send.data(), p->recv.data(), size, MPI_INT64_T, MPI_SUM, comm, &p->req));
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    int done = 0;
    MS_MPI_CHECK(MPI_Test(&p->req, &done, MPI_STATUS_IGNORE));
    if (done != 0) break;
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (waited > timeout_s) {
      (void)p.release();  // MPI may still write into it (a collective cannot be cancelled)
      throw SetupTimeout(stage + ": not every rank of the group arrived within " + fmt_seconds(timeout_s) +
                         " s (schedule.peer_timeout): a rank is hung or died before it" +
                         (local_error.empty() ? std::string() : "; this rank's own error: " + local_error));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  int failed = -1;
  for (int r = 0; r < size && failed < 0; ++r)
    if (p->recv[static_cast<std::size_t>(r)] == 2) failed = r;
  if (failed < 0) return;
  // Every rank is here: a blocking broadcast of the lowest failing rank's message cannot hang.
  std::int64_t len = rank == failed ? static_cast<std::int64_t>(local_error.size()) : 0;
  MS_MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT64_T, failed, comm));
  std::string error = rank == failed ? local_error : std::string(static_cast<std::size_t>(len), '\0');
  if (len > 0) MS_MPI_CHECK(MPI_Bcast(error.data(), static_cast<int>(len), MPI_CHAR, failed, comm));
  fail("", "nccl", stage + " failed on rank " + std::to_string(failed) + " of the group, so every rank stops: " + error);
}

}  // namespace detail
}  // namespace ms::dist
