// NCCL backend of dist::Comm (built when the CUDA toolkit with NCCL is found: MS_HAVE_NCCL).
// The communicator is bootstrapped from an MPI communicator: each rank binds GPU
// ms::gpu_index() (core/gpu_binding.hpp, the same GPU its tensors use), rank 0 makes the unique
// id, MPI broadcasts it, every rank joins. Host data of the Comm interface goes over a duplicate
// of that MPI communicator.
//
// Set-up never hangs on a peer: the ranks agree (agree_on_setup) that each reached the NCCL
// init before the id is sent, so a rank that failed before it (no GPU, a CUDA error) ends every
// rank with its message; the init itself is non-blocking (NCCL >= 2.14) and polled against the
// timeout, and the ranks agree on its outcome too. A peer that never arrives ends in SetupTimeout.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "mergesweep/core/error.hpp"
#include "mergesweep/dist/comm.hpp"

namespace ms::dist {

// True when this build has the NCCL backend.
bool nccl_built();
// True when this build has CUDA and the process sees at least one GPU.
bool cuda_device_visible();
// Collective over `comm`. Throws ms::Error when not built or when no GPU is visible (the same
// error on every rank: the lowest failing rank's). Throws SetupTimeout when a peer did not arrive
// within `timeout_s`. A collective whose peer died fails with an error after `timeout_s` (the
// communicator is aborted) instead of hanging.
std::unique_ptr<Comm> make_nccl_comm(MPI_Comm comm, double timeout_s = 600);

// A peer never arrived during set-up. The peers that did may be waiting in a collective the
// missing one will never join, so the caller should end the job (not agree with the others).
class SetupTimeout : public Error {
 public:
  explicit SetupTimeout(const std::string& detail);
};

namespace detail {
// Collective over `comm`, bounded by `timeout_s`: returns when every rank passed "" (its part of
// `stage` succeeded); throws ms::Error on every rank, naming the lowest failing rank and its
// message, when one did not; throws SetupTimeout when not every rank called within timeout_s.
void agree_on_setup(MPI_Comm comm, const std::string& local_error, double timeout_s, const std::string& stage);
// Tests only: make_nccl_comm fails on group rank `rank` before the NCCL init (-1: never).
// Returns the previous value.
int set_nccl_setup_fault_for_tests(int rank);
}  // namespace detail

}  // namespace ms::dist
