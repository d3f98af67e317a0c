// MPI backend: blocking collectives on host memory.
#include <cstdlib>
#include <string>

#include "mergesweep/core/error.hpp"
#include "mergesweep/dist/mpi_comm.hpp"

namespace ms::dist {
namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail("", "mpi", std::string(what) + " failed: " + std::string(msg, static_cast<std::size_t>(len)));
}

class MpiComm final : public Comm {
 public:
  explicit MpiComm(MPI_Comm c) : comm_(c) {
    MPI_Comm_rank(c, &rank_);
    MPI_Comm_size(c, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  void allreduce_sum(std::int64_t* data, std::size_t n) override {
    if (size_ > 1) check(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_INT64_T, MPI_SUM, comm_), "MPI_Allreduce");
  }
  void allreduce_sum(double* data, std::size_t n) override {
    if (size_ > 1) check(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, comm_), "MPI_Allreduce");
  }
  void broadcast(void* data, std::size_t bytes, int root) override {
    if (size_ == 1) return;
    // MPI counts are int: large buffers go in chunks.
    constexpr std::size_t kChunk = std::size_t{1} << 30;
    auto* p = static_cast<char*>(data);
    for (std::size_t off = 0; off < bytes; off += kChunk) {
      const std::size_t len = bytes - off < kChunk ? bytes - off : kChunk;
      check(MPI_Bcast(p + off, static_cast<int>(len), MPI_BYTE, root, comm_), "MPI_Bcast");
    }
  }
  void barrier() override {
    if (size_ > 1) check(MPI_Barrier(comm_), "MPI_Barrier");
  }

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm(MPI_Comm comm) { return std::make_unique<MpiComm>(comm); }

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  if (provided < MPI_THREAD_MULTIPLE && size_ > 1) {
    MPI_Finalize();
    fail("", "mpi", "this MPI library does not provide MPI_THREAD_MULTIPLE (rank 0 coordinates on a second thread)");
  }
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void MpiSession::abort_job(int status) {
  MPI_Abort(MPI_COMM_WORLD, status);
  std::_Exit(status);
}

Groups split_groups(int group_size) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (group_size < 1 || size % group_size != 0) {
    fail("", "--group-size", "the number of ranks (" + std::to_string(size) + ") must be a multiple of the group size (" +
                                 std::to_string(group_size) + ")");
  }
  Groups g;
  g.group_size = group_size;
  g.num_groups = size / group_size;
  g.group = rank / group_size;
  check(MPI_Comm_split(MPI_COMM_WORLD, g.group, rank, &g.comm), "MPI_Comm_split");
  MPI_Comm_rank(g.comm, &g.group_rank);
  return g;
}

void free_groups(Groups& g) {
  if (g.comm != MPI_COMM_NULL) MPI_Comm_free(&g.comm);
}

}  // namespace ms::dist
