// NCCL backend of dist::Comm (built when the CUDA toolkit with NCCL is found: MS_HAVE_NCCL).
// The communicator is bootstrapped from an MPI communicator: each rank binds GPU
// node_local_rank() % visible devices, rank 0 makes the unique id, MPI broadcasts it, every rank
// joins. Host data of the Comm interface goes over a duplicate of that MPI communicator.
#pragma once

#include <mpi.h>

#include <memory>

#include "mergesweep/dist/comm.hpp"

namespace ms::dist {

// True when this build has the NCCL backend.
bool nccl_built();
// True when this build has CUDA and the process sees at least one GPU.
bool cuda_device_visible();
// Collective over `comm`. Throws ms::Error when not built or when no GPU is visible. A
// collective whose peer died fails with an error after `timeout_s` (the communicator is
// aborted) instead of hanging.
std::unique_ptr<Comm> make_nccl_comm(MPI_Comm comm, double timeout_s = 600);

}  // namespace ms::dist
