// NCCL backend. Set-up (see nccl_comm.hpp): local preparation, an agreement, the id over MPI,
// a non-blocking init polled against the timeout, an agreement on its outcome. Buffers of
// broadcast/allgather/allgatherv are device memory on this rank's GPU
// (checked: a host pointer is an error naming the call). Host data (the scalar allreduces,
// host_broadcast) goes over MPI on a duplicate of the group's communicator. Every device call
// synchronizes the device first (work queued by libtorch on its own stream must be done before
// NCCL reads it) and waits for its own stream after, polling ncclCommGetAsyncError so a dead
// peer ends in an error, not a hang. After an abort the communicator is gone: later calls fail
// and the destructor does not destroy it again.
#include "mergesweep/dist/nccl_comm.hpp"

#include <atomic>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/dist/check.hpp"
#include "mergesweep/dist/mpi_comm.hpp"
#include "mergesweep/dist/progress.hpp"

#if MS_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <string>
#include <thread>

namespace ms::dist::detail {
namespace {
void cuda_check(cudaError_t rc, const char* call, const char* file, int line) {
  if (rc != cudaSuccess)
    fail("", "cuda", std::string(call) + " failed (" + source_name(file) + ":" + std::to_string(line) + "): " + cudaGetErrorString(rc));
}
void nccl_check(ncclResult_t rc, const char* call, const char* file, int line, bool in_progress_ok = false) {
  if (rc != ncclSuccess && !(in_progress_ok && rc == ncclInProgress))
    fail("", "nccl", std::string(call) + " failed (" + source_name(file) + ":" + std::to_string(line) + "): " + ncclGetErrorString(rc));
}
}  // namespace
}  // namespace ms::dist::detail

#define MS_CUDA_CHECK(call) ::ms::dist::detail::cuda_check((call), #call, __FILE__, __LINE__)
#define MS_NCCL_CHECK(call) ::ms::dist::detail::nccl_check((call), #call, __FILE__, __LINE__)
// A call on the non-blocking communicator: ncclInProgress means queued, and wait() polls it.
#define MS_NCCL_ENQUEUE(call) ::ms::dist::detail::nccl_check((call), #call, __FILE__, __LINE__, true)
#endif

namespace ms::dist {
namespace {
std::atomic<int> g_setup_fault_rank{-1};
[[maybe_unused]] int setup_fault_rank() { return g_setup_fault_rank.load(); }
}  // namespace

int detail::set_nccl_setup_fault_for_tests(int rank) { return g_setup_fault_rank.exchange(rank); }

#if MS_HAVE_NCCL
namespace {

class NcclComm final : public Comm {
 public:
  NcclComm(MPI_Comm mpi, double timeout_s) : timeout_s_(timeout_s) {
    MS_MPI_CHECK(MPI_Comm_dup(mpi, &host_comm_));
    try {
      host_ = make_mpi_comm(host_comm_);
      rank_ = host_->rank();
      size_ = host_->size();
      set_up();
    } catch (...) {
      release();  // a throwing constructor runs no destructor
      throw;
    }
  }
  ~NcclComm() override { release(); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  Memory buffer_memory() const override { return Memory::Device; }

  void allreduce_sum(std::int64_t* data, std::size_t n) override { host_->allreduce_sum(data, n); }
  void allreduce_sum(double* data, std::size_t n) override { host_->allreduce_sum(data, n); }
  void host_broadcast(void* data, std::size_t bytes, int root) override { host_->host_broadcast(data, bytes, root); }

  void broadcast(void* data, std::size_t bytes, int root) override {
    if (root < 0 || root >= size_) fail("", "nccl", "broadcast: root " + std::to_string(root) + " outside the group");
    require_device(data, bytes, "broadcast");
    if (bytes == 0) return;
    begin();
    MS_NCCL_ENQUEUE(ncclBroadcast(data, data, bytes, ncclChar, root, comm_, stream_));
    wait();
  }
  void allgather(const void* send, void* recv, std::size_t bytes) override {
    require_device(send, bytes, "allgather (send)");
    require_device(recv, bytes * static_cast<std::size_t>(size_), "allgather (recv)");
    if (bytes == 0) return;
    begin();
    MS_NCCL_ENQUEUE(ncclAllGather(send, recv, bytes, ncclChar, comm_, stream_));
    wait();
  }
  // NCCL has no allgatherv: one broadcast per rank with data, fused in a group call.
  void allgatherv(const void* send, void* recv, const std::vector<std::size_t>& counts) override {
    if (counts.size() != static_cast<std::size_t>(size_)) fail("", "nccl", "allgatherv: one count per rank expected");
    const auto off = allgatherv_offsets(counts);
    auto* out = static_cast<char*>(recv);
    require_device(send, counts[static_cast<std::size_t>(rank_)], "allgatherv (send)");
    require_device(recv, off.back(), "allgatherv (recv)");
    if (off.back() == 0) return;
    begin();
    MS_NCCL_ENQUEUE(ncclGroupStart());
    for (int r = 0; r < size_; ++r) {
      const auto ru = static_cast<std::size_t>(r);
      if (counts[ru] == 0) continue;
      const void* src = r == rank_ ? send : out + off[ru];
      MS_NCCL_ENQUEUE(ncclBroadcast(src, out + off[ru], counts[ru], ncclChar, r, comm_, stream_));
    }
    MS_NCCL_ENQUEUE(ncclGroupEnd());
    wait();
  }
  void barrier() override { host_->barrier(); }

 private:
  // The order matters: nothing that can fail on one rank alone may stand between two ranks'
  // entries into a collective. So every rank does its local part, the ranks agree, and only
  // then is the id sent and the NCCL init entered; its outcome is agreed again.
  void set_up() {
    ncclUniqueId id{};
    std::string error;
    try {
      prepare(&id);
    } catch (const std::exception& e) {
      error = e.what();
    }
    detail::agree_on_setup(host_comm_, error, timeout_s_, "NCCL set-up (before ncclCommInitRank)");
    MS_MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, host_comm_));
    error.clear();
    try {
      init(id);
    } catch (const std::exception& e) {
      error = e.what();
    }
    // A rank whose init failed fast waits here for the others, which may sit in their init up to
    // the timeout: hence twice the timeout for this agreement.
    try {
      detail::agree_on_setup(host_comm_, error, 2 * timeout_s_, "NCCL set-up (ncclCommInitRank)");
    } catch (...) {
      // A peer failed: destroying would wait for it, aborting does not.
      if (comm_ != nullptr) ncclCommAbort(comm_);
      comm_ = nullptr;
      throw;
    }
  }
  void prepare(ncclUniqueId* id) {
    if (rank_ == setup_fault_rank()) fail("", "nccl", "injected set-up failure (tests)");
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      cudaGetLastError();  // not sticky; leave no error behind for the next CUDA call
      fail("", "nccl", "no CUDA device is visible");
    }
    device_ = gpu_index(devices);
    MS_CUDA_CHECK(cudaSetDevice(device_));
    MS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    if (rank_ == 0) MS_NCCL_CHECK(ncclGetUniqueId(id));
  }
  void init(const ncclUniqueId& id) {
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
    // Non-blocking: the call returns at once and the init is polled, so a peer that never joins
    // ends in an error after the timeout instead of a hang inside NCCL. The communicator stays
    // non-blocking: its calls may answer ncclInProgress, which nccl_enqueue and wait() accept.
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const ncclResult_t rc = ncclCommInitRankConfig(&comm_, size_, id, rank_, &config);
    if (rc != ncclSuccess && rc != ncclInProgress) {
      if (comm_ != nullptr) ncclCommAbort(comm_);
      comm_ = nullptr;
      MS_NCCL_CHECK(rc);
    }
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      ncclResult_t state = ncclInProgress;
      const ncclResult_t q = ncclCommGetAsyncError(comm_, &state);
      if (q == ncclSuccess && state == ncclSuccess) return;
      const double waited = seconds_since(start);
      if ((q == ncclSuccess && state == ncclInProgress) && waited <= timeout_s_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      ncclCommAbort(comm_);  // frees it, the init in progress included
      comm_ = nullptr;
      if (q != ncclSuccess) MS_NCCL_CHECK(q);
      fail("", "nccl", state != ncclInProgress ? std::string("ncclCommInitRankConfig failed: ") + ncclGetErrorString(state)
                                               : "ncclCommInitRankConfig timed out after " + std::to_string(waited) +
                                                     " s (schedule.peer_timeout): a peer never joined");
    }
#else
    // Before NCCL 2.14 there is no non-blocking init: the agreement before it is the only guard.
    MS_NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_));
#endif
  }
  // Destructor and failed constructor: nothing to throw to. An aborted communicator
  // (comm_ == nullptr) is already freed.
  void release() noexcept {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    stream_ = nullptr;
    if (comm_ != nullptr) ncclCommDestroy(comm_);
    comm_ = nullptr;
    host_.reset();
    if (host_comm_ != MPI_COMM_NULL) MPI_Comm_free(&host_comm_);
  }
  static double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  void require_device(const void* p, std::size_t bytes, const char* what) const {
    if (bytes == 0) return;
    cudaPointerAttributes a{};
    const bool ok = p != nullptr && cudaPointerGetAttributes(&a, p) == cudaSuccess &&
                    (a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged) && a.device == device_;
    if (!ok) {
      cudaGetLastError();  // clear the sticky-free error a host pointer may leave
      fail("", "nccl", std::string(what) + ": the buffer is not memory of this rank's GPU " + std::to_string(device_) +
                           " (the NCCL backend carries device buffers; host data goes over MPI)");
    }
  }
  void begin() {
    if (comm_ == nullptr) fail("", "nccl", "the communicator was aborted after an earlier failed collective");
    MS_CUDA_CHECK(cudaDeviceSynchronize());
  }
  // NCCL calls return before the GPU is done; a dead peer would make the stream wait forever.
  void wait() {
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      // The async state first: on a non-blocking communicator ncclInProgress means the work may
      // not be on the stream yet, so an idle stream proves nothing until the state is success.
      ncclResult_t async = ncclSuccess;
      MS_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
      if (async == ncclSuccess) {
        const cudaError_t q = cudaStreamQuery(stream_);
        if (q == cudaSuccess) break;
        if (q != cudaErrorNotReady) MS_CUDA_CHECK(q);
      }
      const double waited = seconds_since(start);
      if ((async != ncclSuccess && async != ncclInProgress) || waited > timeout_s_) {
        ncclCommAbort(comm_);  // frees the communicator: never destroy it again
        comm_ = nullptr;
        fail("", "nccl", async != ncclSuccess && async != ncclInProgress ? std::string("collective failed: ") + ncclGetErrorString(async)
                                              : "collective timed out after " + std::to_string(waited) + " s (dead peer?)");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    note_progress();
  }

  int rank_ = 0, size_ = 1, device_ = 0;
  double timeout_s_;
  MPI_Comm host_comm_ = MPI_COMM_NULL;
  std::unique_ptr<Comm> host_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

bool nccl_built() { return true; }
std::unique_ptr<Comm> make_nccl_comm(MPI_Comm comm, double timeout_s) { return std::make_unique<NcclComm>(comm, timeout_s); }

bool cuda_device_visible() {
  int devices = 0;
  return cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
}
#else
bool nccl_built() { return false; }
std::unique_ptr<Comm> make_nccl_comm(MPI_Comm, double) {
  fail("", "schedule.comm", "nccl: this build has no NCCL backend (the CUDA toolkit with NCCL was not found at configure "
                            "time); use comm: mpi");
}
bool cuda_device_visible() { return false; }
#endif

}  // namespace ms::dist
