// NCCL backend. Buffers passed to broadcast() are device memory; the scalar allreduces stage
// host values through a small device buffer. Every call synchronizes the device first (work
// queued by libtorch on its own stream must be done before NCCL reads it) and waits for its own
// stream after, polling ncclCommGetAsyncError so a dead peer ends in an error, not a hang.
#include "mergesweep/dist/nccl_comm.hpp"

#include "mergesweep/core/error.hpp"

#if MS_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <string>
#include <thread>
#endif

namespace ms::dist {

#if MS_HAVE_NCCL
namespace {

void cuda_check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) fail("", "cuda", std::string(what) + ": " + cudaGetErrorString(rc));
}
void nccl_check(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) fail("", "nccl", std::string(what) + ": " + ncclGetErrorString(rc));
}

class NcclComm final : public Comm {
 public:
  NcclComm(MPI_Comm mpi, double timeout_s) : timeout_s_(timeout_s) {
    MPI_Comm_rank(mpi, &rank_);
    MPI_Comm_size(mpi, &size_);
    // The GPU from the node-local rank (portable across launchers; SLURM may renumber devices).
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
    int local_rank = 0;
    MPI_Comm_rank(local, &local_rank);
    MPI_Comm_free(&local);
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) fail("", "nccl", "no CUDA device is visible");
    cuda_check(cudaSetDevice(local_rank % devices), "cudaSetDevice");
    ncclUniqueId id;
    if (rank_ == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mpi);
    nccl_check(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    cuda_check(cudaMalloc(&scratch_, kScratch), "cudaMalloc");
  }
  ~NcclComm() override {
    cudaFree(scratch_);
    cudaStreamDestroy(stream_);
    ncclCommDestroy(comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }

  void allreduce_sum(std::int64_t* data, std::size_t n) override { host_allreduce(data, n, ncclInt64, 8); }
  void allreduce_sum(double* data, std::size_t n) override { host_allreduce(data, n, ncclFloat64, 8); }
  void broadcast(void* data, std::size_t bytes, int root) override {
    cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    nccl_check(ncclBroadcast(data, data, bytes, ncclChar, root, comm_, stream_), "ncclBroadcast");
    wait();
  }
  void barrier() override {
    std::int64_t x = 0;
    allreduce_sum(&x, 1);
  }

 private:
  static constexpr std::size_t kScratch = std::size_t{1} << 20;

  void host_allreduce(void* data, std::size_t n, ncclDataType_t type, std::size_t elem) {
    auto* p = static_cast<char*>(data);
    const std::size_t per = kScratch / elem;
    for (std::size_t off = 0; off < n; off += per) {
      const std::size_t len = n - off < per ? n - off : per;
      cuda_check(cudaMemcpyAsync(scratch_, p + off * elem, len * elem, cudaMemcpyHostToDevice, stream_), "cudaMemcpy");
      nccl_check(ncclAllReduce(scratch_, scratch_, len, type, ncclSum, comm_, stream_), "ncclAllReduce");
      cuda_check(cudaMemcpyAsync(p + off * elem, scratch_, len * elem, cudaMemcpyDeviceToHost, stream_), "cudaMemcpy");
      wait();
    }
  }

  // NCCL calls return before the GPU is done; a dead peer would make the stream wait forever.
  void wait() {
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream_);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) cuda_check(q, "cudaStreamQuery");
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (async != ncclSuccess || waited > timeout_s_) {
        ncclCommAbort(comm_);
        fail("", "nccl", async != ncclSuccess ? std::string("collective failed: ") + ncclGetErrorString(async)
                                              : "collective timed out after " + std::to_string(waited) + " s (dead peer?)");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  int rank_ = 0, size_ = 1;
  double timeout_s_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* scratch_ = nullptr;
};

}  // namespace

bool nccl_built() { return true; }
std::unique_ptr<Comm> make_nccl_comm(MPI_Comm comm, double timeout_s) { return std::make_unique<NcclComm>(comm, timeout_s); }
#else
bool nccl_built() { return false; }
std::unique_ptr<Comm> make_nccl_comm(MPI_Comm, double) {
  fail("", "--backend", "this build has no NCCL backend (the CUDA toolkit with NCCL was not found at configure time)");
}
#endif

}  // namespace ms::dist
