// Backend-independent parts of dist: MPI error checks, allgatherv layout, the group verdict.
#include <cstring>
#include <string>

#include "mergesweep/core/error.hpp"
#include "mergesweep/dist/check.hpp"
#include "mergesweep/dist/comm.hpp"
#include "mergesweep/dist/mpi_comm.hpp"
#include "mergesweep/dist/nccl_comm.hpp"

namespace ms::dist {
namespace detail {

const char* source_name(const char* file) {
  const char* slash = std::strrchr(file, '/');
  return slash ? slash + 1 : file;
}

void mpi_check(int rc, const char* call, const char* file, int line) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
  fail("", "mpi", std::string(call) + " failed (" + source_name(file) + ":" + std::to_string(line) +
                      "): " + (len > 0 ? std::string(msg, static_cast<std::size_t>(len)) : "error " + std::to_string(rc)));
}

}  // namespace detail

std::vector<std::size_t> allgatherv_offsets(const std::vector<std::size_t>& counts) {
  std::vector<std::size_t> off(counts.size() + 1, 0);
  for (std::size_t r = 0; r < counts.size(); ++r) off[r + 1] = off[r] + counts[r];
  return off;
}

Verdict agree(Comm& comm, const std::string& local_error) {
  Verdict v;
  std::int64_t failures = local_error.empty() ? 0 : 1;
  comm.allreduce_sum(&failures, 1);
  if (failures == 0) return v;
  // Which ranks failed: one slot per rank, so every rank finds the same lowest one.
  std::vector<std::int64_t> failed(static_cast<std::size_t>(comm.size()), 0);
  failed[static_cast<std::size_t>(comm.rank())] = local_error.empty() ? 0 : 1;
  comm.allreduce_sum(failed.data(), failed.size());
  v.ok = false;
  for (int r = 0; r < comm.size() && v.failed_rank < 0; ++r)
    if (failed[static_cast<std::size_t>(r)] != 0) v.failed_rank = r;
  std::int64_t len = comm.rank() == v.failed_rank ? static_cast<std::int64_t>(local_error.size()) : 0;
  comm.host_broadcast(&len, sizeof len, v.failed_rank);
  v.error = comm.rank() == v.failed_rank ? local_error : std::string(static_cast<std::size_t>(len), '\0');
  if (len > 0) comm.host_broadcast(v.error.data(), v.error.size(), v.failed_rank);
  return v;
}

std::unique_ptr<Comm> make_world_comm() { return make_mpi_comm(MPI_COMM_WORLD); }

std::unique_ptr<Comm> make_group_comm(const Groups& g, const std::string& backend, double nccl_timeout_s) {
  if (backend == "nccl") return make_nccl_comm(g.comm, nccl_timeout_s);
  if (backend != "mpi") fail("", "schedule.comm", "unknown backend '" + backend + "'; expected mpi or nccl");
  return make_mpi_comm(g.comm);
}

}  // namespace ms::dist
