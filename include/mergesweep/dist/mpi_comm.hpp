// MPI backend of dist::Comm and the process-level MPI set-up of a sweep.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "mergesweep/dist/comm.hpp"

namespace ms::dist {

// The whole job (MPI_COMM_WORLD) as a Comm.
std::unique_ptr<Comm> make_world_comm();

// Wraps (does not own) an MPI communicator. Its collectives tick note_progress() (progress.hpp).
std::unique_ptr<Comm> make_mpi_comm(MPI_Comm comm);

// MPI_Init_thread (MPI_THREAD_MULTIPLE: rank 0 runs the coordinator on a second thread) and
// MPI_Finalize. Errors return instead of aborting (MPI_ERRORS_RETURN on the world). Registers
// this rank's node_ranks() as its node slot (core/gpu_binding.hpp: the GPU it binds).
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  int world_rank() const noexcept { return rank_; }
  int world_size() const noexcept { return size_; }
  // Ends every rank of the job (a dead or hung peer must not leave the others waiting forever).
  [[noreturn]] static void abort_job(int status);

 private:
  int rank_ = 0, size_ = 1;
};

// This rank's index among the ranks on its node and their count (collective over
// MPI_COMM_WORLD: MPI_Comm_split_type, shared memory). MpiSession registers it once; the GPU
// choice reads it through ms::node_slot().
struct NodeRanks {
  int rank = 0;
  int size = 1;
};
NodeRanks node_ranks();

// Worker groups: the world split into consecutive blocks of `group_size` ranks.
struct Groups {
  int group_size = 1;
  int num_groups = 1;
  int group = 0;         // this rank's group
  int group_rank = 0;    // rank inside the group (0 = the group's leader)
  int world_rank = 0;
  MPI_Comm comm = MPI_COMM_NULL;
};
// Collective over MPI_COMM_WORLD. Throws ms::Error when the world size is not a multiple.
Groups split_groups(int group_size);
void free_groups(Groups& g);
// The group's collectives on `backend` ("mpi" or "nccl"; see nccl_comm.hpp for the NCCL timeout).
// Collective over the group.
std::unique_ptr<Comm> make_group_comm(const Groups& g, const std::string& backend, double nccl_timeout_s);

namespace detail {
// Tests only: the MPI backend's bytes per call (default 1 GiB), so small buffers exercise the
// chunked paths that real sizes take beyond MPI's int counts. Returns the previous value.
std::size_t set_mpi_max_bytes_for_tests(std::size_t bytes);
}  // namespace detail

}  // namespace ms::dist
