// The collectives a worker group needs, behind one interface so merge and eval code never call
// MPI or NCCL directly. Backends: MPI (host memory, always built) and NCCL (device memory, built
// when CUDA is found; communicators bootstrapped from MPI).
//
// Two kinds of data, two rules:
//  - Buffers of broadcast / allgather / allgatherv live in buffer_memory(): host memory for the
//    MPI backend, the rank's CUDA device for NCCL. The NCCL backend refuses a host pointer (an
//    error naming the call), so a tensor must be on the comm's device before it is shared.
//  - The scalar allreduces and host_broadcast take host memory on both backends: they carry
//    control data and small host tallies, and the NCCL backend sends them over MPI.
// Every collective is blocking: when it returns, the buffers hold their final contents.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ms::dist {

enum class Memory { Host, Device };

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "mpi" or "nccl"
  virtual Memory buffer_memory() const = 0;  // where broadcast/allgather/allgatherv buffers live

  // Host memory. In place, every rank gets the sum. Integer sums are exact; double sums add in
  // rank order (callers that need bitwise invariance reduce vectors with one nonzero per slot).
  virtual void allreduce_sum(std::int64_t* data, std::size_t n) = 0;
  virtual void allreduce_sum(double* data, std::size_t n) = 0;
  // Host memory: `bytes` bytes at `data` on `root` are copied to every rank's `data`.
  virtual void host_broadcast(void* data, std::size_t bytes, int root) = 0;

  // buffer_memory(): `bytes` bytes at `data` on `root` are copied to every rank's `data`.
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  // buffer_memory(): every rank sends `bytes` bytes; `recv` (size() * bytes) holds rank r's at
  // r * bytes. `send` may be `recv + rank() * bytes` (in place).
  virtual void allgather(const void* send, void* recv, std::size_t bytes) = 0;
  // buffer_memory(): rank r sends counts[r] bytes (every rank passes the same counts, any of them
  // may be 0); `recv` holds them back to back in rank order (rank r's at the sum of counts[<r]).
  // `send` may point into `recv` at this rank's offset (in place).
  virtual void allgatherv(const void* send, void* recv, const std::vector<std::size_t>& counts) = 0;
  virtual void barrier() = 0;
};

// Byte offsets of each rank's block in allgatherv's receive buffer, plus the total at the end
// (size counts.size() + 1).
std::vector<std::size_t> allgatherv_offsets(const std::vector<std::size_t>& counts);

// The success agreement of a group before a collective that follows fallible work. Every rank
// passes its own error ("" = its part succeeded); every rank gets the same verdict: ok, or the
// lowest failing rank and its error. Success costs one int64 allreduce; a failure adds one more
// and a broadcast of the message. Host memory on both backends.
struct Verdict {
  bool ok = true;
  int failed_rank = -1;  // lowest rank that failed
  std::string error;     // its message
};
Verdict agree(Comm& comm, const std::string& local_error);

}  // namespace ms::dist
