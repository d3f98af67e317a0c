// The collectives a worker group needs, behind one interface so merge and eval code never call
// MPI or NCCL directly. Backends: MPI (host memory, always built) and NCCL (device memory, built
// when CUDA is found; communicators bootstrapped from MPI). Pointers are host pointers for the
// MPI backend and device pointers for NCCL; the scalar allreduces take host pointers on both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ms::dist {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "mpi" or "nccl"
  // In place, every rank gets the sum. Integer sums are exact; double sums add in rank order on
  // the MPI backend (callers that need bitwise invariance reduce vectors with one nonzero each).
  virtual void allreduce_sum(std::int64_t* data, std::size_t n) = 0;
  virtual void allreduce_sum(double* data, std::size_t n) = 0;
  // `bytes` bytes at `data` on `root` are copied to every rank's `data`.
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  virtual void barrier() = 0;
};

}  // namespace ms::dist
