// MPI backend: blocking collectives on host memory. MPI counts and displacements are int, so
// buffers beyond 1 GiB go in chunks (broadcast) or as one chunked broadcast per rank (allgatherv).
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/dist/check.hpp"
#include "mergesweep/dist/mpi_comm.hpp"
#include "mergesweep/dist/progress.hpp"

namespace ms::dist {
namespace {

// Bytes per MPI call: broadcast chunks, and the largest allgatherv done as one MPI_Allgatherv.
std::size_t g_max_bytes = std::size_t{1} << 30;

void check_count(std::size_t n, const char* what) {
  if (n > static_cast<std::size_t>(INT_MAX)) fail("", "mpi", std::string(what) + ": " + std::to_string(n) + " elements exceed MPI's int count");
}

class MpiComm final : public Comm {
 public:
  explicit MpiComm(MPI_Comm c) : comm_(c) {
    MS_MPI_CHECK(MPI_Comm_rank(c, &rank_));
    MS_MPI_CHECK(MPI_Comm_size(c, &size_));
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  Memory buffer_memory() const override { return Memory::Host; }

  void allreduce_sum(std::int64_t* data, std::size_t n) override {
    check_count(n, "allreduce_sum");
    if (size_ > 1 && n > 0) MS_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_INT64_T, MPI_SUM, comm_));
    note_progress();
  }
  void allreduce_sum(double* data, std::size_t n) override {
    check_count(n, "allreduce_sum");
    if (size_ > 1 && n > 0) MS_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, comm_));
    note_progress();
  }
  void host_broadcast(void* data, std::size_t bytes, int root) override { broadcast(data, bytes, root); }
  void broadcast(void* data, std::size_t bytes, int root) override {
    check_root(root);
    auto* p = static_cast<char*>(data);
    const std::size_t chunk = g_max_bytes;
    for (std::size_t off = 0; size_ > 1 && off < bytes; off += chunk) {
      const std::size_t len = bytes - off < chunk ? bytes - off : chunk;
      MS_MPI_CHECK(MPI_Bcast(p + off, static_cast<int>(len), MPI_BYTE, root, comm_));
    }
    note_progress();
  }
  void allgather(const void* send, void* recv, std::size_t bytes) override {
    allgatherv(send, recv, std::vector<std::size_t>(static_cast<std::size_t>(size_), bytes));
  }
  void allgatherv(const void* send, void* recv, const std::vector<std::size_t>& counts) override {
    if (counts.size() != static_cast<std::size_t>(size_))
      fail("", "mpi", "allgatherv: " + std::to_string(counts.size()) + " counts for a group of " + std::to_string(size_));
    const auto off = allgatherv_offsets(counts);
    auto* out = static_cast<char*>(recv);
    const auto me = static_cast<std::size_t>(rank_);
    const bool in_place = send == out + off[me];
    if (off.back() <= g_max_bytes) {
      std::vector<int> cnt(counts.size()), displ(counts.size());
      for (std::size_t r = 0; r < counts.size(); ++r) cnt[r] = static_cast<int>(counts[r]), displ[r] = static_cast<int>(off[r]);
      MS_MPI_CHECK(MPI_Allgatherv(in_place ? MPI_IN_PLACE : send, cnt[me], MPI_BYTE, recv, cnt.data(), displ.data(), MPI_BYTE, comm_));
    } else {
      // Beyond one call (int displacements): every rank's block is broadcast from its owner, in chunks.
      if (!in_place && counts[me] > 0) std::memcpy(out + off[me], send, counts[me]);
      for (int r = 0; r < size_; ++r) broadcast(out + off[static_cast<std::size_t>(r)], counts[static_cast<std::size_t>(r)], r);
    }
    note_progress();
  }
  void barrier() override {
    if (size_ > 1) MS_MPI_CHECK(MPI_Barrier(comm_));
    note_progress();
  }

 private:
  void check_root(int root) const {
    if (root < 0 || root >= size_) fail("", "mpi", "broadcast: root " + std::to_string(root) + " outside the group of " + std::to_string(size_));
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

namespace detail {
std::size_t set_mpi_max_bytes_for_tests(std::size_t bytes) {
  const std::size_t old = g_max_bytes;
  g_max_bytes = bytes;
  return old;
}
}  // namespace detail

std::unique_ptr<Comm> make_mpi_comm(MPI_Comm comm) { return std::make_unique<MpiComm>(comm); }

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
    fail("", "mpi", "MPI_Init_thread failed (is this binary started by mpirun or srun from a matching MPI?)");
  MS_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  MS_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  MS_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  if (provided < MPI_THREAD_MULTIPLE && size_ > 1) {
    MPI_Finalize();
    fail("", "mpi", "this MPI library does not provide MPI_THREAD_MULTIPLE (rank 0 coordinates on a second thread)");
  }
  // The node split is collective over the world: made here, where every rank is, and not inside
  // a group's collective (where a world collective could pair with another group's call).
  const NodeRanks local = node_ranks();
  register_mpi_node_slot(local.rank, local.size);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  if (MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Finalize();  // destructor: nothing to throw to
}

void MpiSession::abort_job(int status) {
  MPI_Abort(MPI_COMM_WORLD, status);  // does not return on success; on failure end this rank at least
  std::_Exit(status);
}

NodeRanks node_ranks() {
  MPI_Comm local = MPI_COMM_NULL;
  MS_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local));
  NodeRanks r;
  MS_MPI_CHECK(MPI_Comm_rank(local, &r.rank));
  MS_MPI_CHECK(MPI_Comm_size(local, &r.size));
  MS_MPI_CHECK(MPI_Comm_free(&local));
  return r;
}

Groups split_groups(int group_size) {
  int rank = 0, size = 1;
  MS_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  MS_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
  if (group_size < 1 || size % group_size != 0) {
    fail("", "--group-size", "the number of ranks (" + std::to_string(size) + ") must be a multiple of the group size (" +
                                 std::to_string(group_size) + ")");
  }
  Groups g;
  g.group_size = group_size;
  g.num_groups = size / group_size;
  g.group = rank / group_size;
  g.world_rank = rank;
  MS_MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, g.group, rank, &g.comm));
  MS_MPI_CHECK(MPI_Comm_rank(g.comm, &g.group_rank));
  return g;
}

void free_groups(Groups& g) {
  if (g.comm != MPI_COMM_NULL) MS_MPI_CHECK(MPI_Comm_free(&g.comm));
  g.comm = MPI_COMM_NULL;
}

}  // namespace ms::dist
