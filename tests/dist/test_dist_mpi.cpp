// dist collectives with real MPI ranks: this binary runs under mpirun (-np 2 and -np 3, see
// CMakeLists.txt); every rank runs every test, and a rank's failure fails the job. Odd sizes,
// zero-length buffers, allgatherv with unequal (and zero) counts, in place and not, the group
// verdict. The NCCL backend runs the same checks on device buffers when a GPU is visible and is
// skipped otherwise (without a GPU, making one is a clear error, which is checked).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <thread>
#include <string>
#include <vector>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/dist/comm.hpp"
#include "mergesweep/dist/mpi_comm.hpp"
#include "mergesweep/dist/nccl_comm.hpp"
#include "mergesweep/dist/progress.hpp"
#include "mergesweep/dist/work_channel.hpp"

#if MS_TEST_CUDA
#include <cuda_runtime.h>
#endif

namespace ms::dist {
namespace {

// A byte that depends on the sending rank and its position: a misplaced block is visible.
std::uint8_t pattern(int rank, std::size_t i) { return static_cast<std::uint8_t>((rank * 131 + i * 7 + 1) & 0xff); }

std::unique_ptr<Comm> world() { return make_mpi_comm(MPI_COMM_WORLD); }

// Buffers in the comm's memory: host vectors for MPI, cudaMalloc'd copies for NCCL.
struct Buffer {
  Comm& comm;
  std::vector<std::uint8_t> host;
  void* dev = nullptr;
  Buffer(Comm& c, std::vector<std::uint8_t> h) : comm(c), host(std::move(h)) {
#if MS_TEST_CUDA
    if (comm.buffer_memory() == Memory::Device) {
      EXPECT_EQ(cudaMalloc(&dev, host.size() + 1), cudaSuccess);
      EXPECT_EQ(cudaMemcpy(dev, host.data(), host.size(), cudaMemcpyHostToDevice), cudaSuccess);
    }
#endif
  }
  ~Buffer() {
#if MS_TEST_CUDA
    if (dev) cudaFree(dev);
#endif
  }
  std::uint8_t* data() { return dev ? static_cast<std::uint8_t*>(dev) : host.data(); }
  std::vector<std::uint8_t> read() {
#if MS_TEST_CUDA
    if (dev) {
      EXPECT_EQ(cudaMemcpy(host.data(), dev, host.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    }
#endif
    return host;
  }
};

void check_broadcast(Comm& c) {
  for (std::size_t bytes : {std::size_t{0}, std::size_t{1}, std::size_t{13}, std::size_t{4097}}) {
    for (int root = 0; root < c.size(); ++root) {
      std::vector<std::uint8_t> h(bytes, 0xee);
      if (c.rank() == root)
        for (std::size_t i = 0; i < bytes; ++i) h[i] = pattern(root, i);
      Buffer b(c, h);
      c.broadcast(b.data(), bytes, root);
      const auto got = b.read();
      for (std::size_t i = 0; i < bytes; ++i) ASSERT_EQ(got[i], pattern(root, i)) << "bytes " << bytes << " root " << root << " at " << i;
    }
  }
}

void check_allgatherv(Comm& c, const std::vector<std::size_t>& counts, bool in_place) {
  const auto off = allgatherv_offsets(counts);
  const auto me = static_cast<std::size_t>(c.rank());
  std::vector<std::uint8_t> recv(off.back(), 0xee), send(counts[me]);
  for (std::size_t i = 0; i < counts[me]; ++i) (in_place ? recv[off[me] + i] : send[i]) = pattern(c.rank(), i);
  Buffer r(c, recv), s(c, send);
  c.allgatherv(in_place ? r.data() + off[me] : s.data(), r.data(), counts);
  const auto got = r.read();
  for (int q = 0; q < c.size(); ++q)
    for (std::size_t i = 0; i < counts[static_cast<std::size_t>(q)]; ++i)
      ASSERT_EQ(got[off[static_cast<std::size_t>(q)] + i], pattern(q, i)) << "block of rank " << q << " at " << i << (in_place ? " (in place)" : "");
}

void check_allgather(Comm& c) {
  for (std::size_t bytes : {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{1001}}) {
    for (bool in_place : {false, true}) {
      const std::size_t n = static_cast<std::size_t>(c.size());
      const auto me = static_cast<std::size_t>(c.rank());
      std::vector<std::uint8_t> recv(bytes * n, 0xee), send(bytes);
      for (std::size_t i = 0; i < bytes; ++i) (in_place ? recv[me * bytes + i] : send[i]) = pattern(c.rank(), i);
      Buffer r(c, recv), s(c, send);
      c.allgather(in_place ? r.data() + me * bytes : s.data(), r.data(), bytes);
      const auto got = r.read();
      for (std::size_t q = 0; q < n; ++q)
        for (std::size_t i = 0; i < bytes; ++i) ASSERT_EQ(got[q * bytes + i], pattern(static_cast<int>(q), i)) << bytes << " bytes";
    }
  }
}

void check_unequal_allgathers(Comm& c) {
  const std::size_t n = static_cast<std::size_t>(c.size());
  std::vector<std::size_t> odd(n), one_empty(n), zeros(n, 0), only_last(n, 0);
  for (std::size_t r = 0; r < n; ++r) odd[r] = 3 + 7 * r, one_empty[r] = r == 0 ? 0 : 1000 + r;
  only_last[n - 1] = 17;
  for (const auto& counts : {odd, one_empty, zeros, only_last})
    for (bool in_place : {false, true}) check_allgatherv(c, counts, in_place);
}

void check_allreduce(Comm& c) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{1023}}) {
    std::vector<std::int64_t> a(n);
    std::vector<double> d(n, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      a[i] = static_cast<std::int64_t>(i) * (c.rank() + 1) - (std::int64_t{1} << 40);
      if (static_cast<int>(i % static_cast<std::size_t>(c.size())) == c.rank()) d[i] = 0.1 * static_cast<double>(i) + 1e-17;
    }
    c.allreduce_sum(a.data(), n);
    c.allreduce_sum(d.data(), n);
    const std::int64_t ranks_sum = static_cast<std::int64_t>(c.size()) * (c.size() + 1) / 2;
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_EQ(a[i], static_cast<std::int64_t>(i) * ranks_sum - c.size() * (std::int64_t{1} << 40));
      ASSERT_EQ(d[i], 0.1 * static_cast<double>(i) + 1e-17);  // one nonzero per slot: exact
    }
  }
  std::uint64_t word = c.rank() == c.size() - 1 ? 0x1234567890abcdefULL : 0;
  c.host_broadcast(&word, sizeof word, c.size() - 1);
  EXPECT_EQ(word, 0x1234567890abcdefULL);
  c.barrier();
}

TEST(DistMpi, WorldHasSeveralRanks) {
  EXPECT_GE(world()->size(), 2) << "run under mpirun -np 2 or more";
  EXPECT_EQ(world()->backend(), "mpi");
  EXPECT_EQ(world()->buffer_memory(), Memory::Host);
}

TEST(DistMpi, Broadcast) { auto c = world(); check_broadcast(*c); }
TEST(DistMpi, Allgather) { auto c = world(); check_allgather(*c); }
TEST(DistMpi, AllgathervUnequalCounts) { auto c = world(); check_unequal_allgathers(*c); }
TEST(DistMpi, AllreduceAndHostBroadcast) { auto c = world(); check_allreduce(*c); }

TEST(DistMpi, CollectivesOnSplitGroups) {
  // Groups of one rank (every world size is a multiple of 1): collectives are local copies.
  Groups g = split_groups(1);
  auto c = make_mpi_comm(g.comm);
  EXPECT_EQ(c->size(), 1);
  check_broadcast(*c);
  check_allgather(*c);
  check_unequal_allgathers(*c);
  check_allreduce(*c);
  free_groups(g);
  EXPECT_THROW(split_groups(world()->size() + 1), ms::Error);
}

TEST(DistMpi, BuffersBeyondOneMpiCallGoInChunks) {
  // 7 bytes per call: broadcasts of 13 and 4097 bytes take several calls; allgathers beyond 7
  // bytes in all take one chunked broadcast per rank instead of one MPI_Allgatherv.
  const std::size_t old = detail::set_mpi_max_bytes_for_tests(7);
  auto c = world();
  check_broadcast(*c);
  check_allgather(*c);
  check_unequal_allgathers(*c);
  detail::set_mpi_max_bytes_for_tests(old);
}

TEST(DistMpi, CountsMustMatchTheGroup) {
  auto c = world();
  std::vector<std::uint8_t> buf(8);
  EXPECT_THROW(c->allgatherv(buf.data(), buf.data(), std::vector<std::size_t>(static_cast<std::size_t>(c->size()) + 1, 0)), ms::Error);
  EXPECT_THROW(c->broadcast(buf.data(), 1, c->size()), ms::Error);
}

TEST(DistMpi, VerdictAgreesOnTheLowestFailingRank) {
  auto c = world();
  const Verdict ok = agree(*c, "");
  EXPECT_TRUE(ok.ok);
  EXPECT_EQ(ok.failed_rank, -1);
  const int last = c->size() - 1;
  const Verdict one = agree(*c, c->rank() == last ? "merge: bad_alloc on rank " + std::to_string(last) : "");
  EXPECT_FALSE(one.ok);
  EXPECT_EQ(one.failed_rank, last);
  EXPECT_EQ(one.error, "merge: bad_alloc on rank " + std::to_string(last));
  const Verdict two = agree(*c, c->rank() >= 1 ? "rank " + std::to_string(c->rank()) : "");
  EXPECT_EQ(two.failed_rank, 1);
  EXPECT_EQ(two.error, "rank 1");
  EXPECT_TRUE(agree(*c, "").ok);  // the group goes on after a failure
}

TEST(DistMpi, CollectivesTickProgress) {
  auto c = world();
  const std::uint64_t before = progress_count();
  c->barrier();
  std::int64_t x = 1;
  c->allreduce_sum(&x, 1);
  EXPECT_GE(progress_count(), before + 2);
  EXPECT_FALSE(poll_drop_between_blocks());
  EXPECT_GE(progress_count(), before + 3);
}

// The coordinator protocol with groups of one: every rank but 0 is a leader and asks for three
// items, reporting each with a payload of its own size (the first one empty); rank 0 serves.
// Leaders make progress while they "work", so their heartbeats reach rank 0.
std::vector<std::uint8_t> report_payload(int rank, std::int64_t index) {
  std::vector<std::uint8_t> p(static_cast<std::size_t>(index) * 37);
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = pattern(rank, i);
  return p;
}

TEST(DistWorkChannel, RequestsReportsAndHeartbeats) {
  auto c = world();
  constexpr std::int64_t kItems = 3;
  if (c->rank() == 0) {
    WorkServer server(1);
    std::vector<std::int64_t> next(static_cast<std::size_t>(c->size()), 0), beats(next.size(), 0);
    int stopped = 0;
    while (stopped < c->size() - 1) {
      WorkReport rep;
      const auto ev = server.poll(&rep);
      if (ev == WorkServer::Event::None) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        continue;
      }
      ASSERT_GE(rep.group, 1);
      const auto g = static_cast<std::size_t>(rep.group);
      if (ev == WorkServer::Event::Beat) {
        ++beats[g];
        continue;
      }
      EXPECT_EQ(rep.index, next[g] - 1) << "group " << rep.group;
      if (rep.index >= 0) {
        EXPECT_EQ(rep.status, rep.index + 10);
        EXPECT_EQ(rep.payload, report_payload(rep.group, rep.index));
      } else {
        EXPECT_TRUE(rep.payload.empty());
      }
      const std::int64_t reply = next[g] < kItems ? next[g]++ : -1;
      if (reply < 0) ++stopped;
      server.assign(rep.group, reply);
    }
    for (std::size_t g = 1; g < beats.size(); ++g) EXPECT_GE(beats[g], 1) << "no heartbeat from group " << g;
    c->barrier();  // every leader has stopped its heartbeats
    server.drain_beats();
  } else {
    {
      WorkClient client(0.01);
      std::int64_t prev = -1;
      for (;;) {
        const std::int64_t idx = client.request(prev, prev >= 0 ? prev + 10 : 0,
                                                prev >= 0 ? report_payload(c->rank(), prev) : std::vector<std::uint8_t>{});
        if (idx < 0) break;
        for (int i = 0; i < 10; ++i) {  // work that makes progress
          note_progress();
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        prev = idx;
      }
    }
    c->barrier();
  }
}

TEST(DistNccl, MakingOneWithoutAGpuIsAClearError) {
  if (cuda_device_visible()) GTEST_SKIP() << "a GPU is visible: DistNccl.Collectives runs instead";
  try {
    make_nccl_comm(MPI_COMM_WORLD);
    ADD_FAILURE() << "make_nccl_comm succeeded without a GPU";
  } catch (const ms::Error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(what.find(nccl_built() ? "no CUDA device is visible" : "no NCCL backend") != std::string::npos) << what;
    // Every rank failed alike; the agreement names the lowest one for all of them.
    if (nccl_built()) {
      EXPECT_NE(what.find("failed on rank 0 of the group"), std::string::npos) << what;
    }
  }
}

// A rank that fails before the NCCL init ends every rank with its message: none is left in
// ncclCommInitRank waiting for it. Runs with or without a GPU (the failure comes first).
TEST(DistNccl, AFailureBeforeInitOnOneRankEndsEveryRank) {
  if (!nccl_built()) GTEST_SKIP() << "built without NCCL";
  const int previous = detail::set_nccl_setup_fault_for_tests(0);
  try {
    make_nccl_comm(MPI_COMM_WORLD, 30);
    ADD_FAILURE() << "make_nccl_comm succeeded with an injected failure on rank 0";
  } catch (const SetupTimeout& e) {
    ADD_FAILURE() << "timed out instead of agreeing: " << e.what();
  } catch (const ms::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("before ncclCommInitRank) failed on rank 0"), std::string::npos) << what;
    EXPECT_NE(what.find("injected set-up failure"), std::string::npos) << what;
  }
  detail::set_nccl_setup_fault_for_tests(previous);
}

// The agreement itself, on a duplicate of the world (a timed-out request may still be pending).
TEST(DistSetup, AgreesAndNamesTheLowestFailingRank) {
  MPI_Comm comm = MPI_COMM_NULL;
  ASSERT_EQ(MPI_Comm_dup(MPI_COMM_WORLD, &comm), MPI_SUCCESS);
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  EXPECT_NO_THROW(detail::agree_on_setup(comm, "", 30, "stage"));
  const bool fails = rank >= size - 2;  // the last two ranks fail; the lower one is named
  const int named = size >= 2 ? size - 2 : 0;
  try {
    detail::agree_on_setup(comm, fails ? "boom " + std::to_string(rank) : "", 30, "stage");
    ADD_FAILURE() << "no error on rank " << rank;
  } catch (const SetupTimeout& e) {
    ADD_FAILURE() << e.what();
  } catch (const ms::Error& e) {
    const std::string want = "stage failed on rank " + std::to_string(named) + " of the group, so every rank stops: boom " + std::to_string(named);
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
  MPI_Barrier(comm);
  MPI_Comm_free(&comm);
}

// A peer that never arrives: the others end after the timeout with an error naming it.
TEST(DistSetup, APeerThatNeverArrivesEndsInATimeout) {
  MPI_Comm comm = MPI_COMM_NULL;
  ASSERT_EQ(MPI_Comm_dup(MPI_COMM_WORLD, &comm), MPI_SUCCESS);
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (rank == size - 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // arrives long after the others gave up
    EXPECT_NO_THROW(detail::agree_on_setup(comm, "", 60, "stage"));
  } else {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      detail::agree_on_setup(comm, "", 0.25, "stage");
      ADD_FAILURE() << "no timeout on rank " << rank;
    } catch (const SetupTimeout& e) {
      EXPECT_NE(std::string(e.what()).find("not every rank of the group arrived within 0.25 s"), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.2);
  }
  MPI_Barrier(comm);  // the abandoned requests complete here, once the late rank has joined
  MPI_Comm_free(&comm);
}

// The node slot that picks the GPU comes from MPI's split once a session exists, and agrees with
// the launcher's numbering where mpirun sets it.
TEST(DistSetup, TheNodeSlotIsMpisSplit) {
  const NodeSlot slot = node_slot();
  EXPECT_EQ(slot.source, "mpi");
  const NodeRanks split = node_ranks();
  EXPECT_EQ(slot.rank, split.rank);
  EXPECT_EQ(slot.size, split.size);
  if (const char* env = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK")) {
    EXPECT_EQ(slot.rank, std::atoi(env));
  }
  if (const char* env = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE")) {
    EXPECT_EQ(slot.size, std::atoi(env));
  }
}

TEST(DistNccl, Collectives) {
  if (!cuda_device_visible()) GTEST_SKIP() << "no GPU visible";
  auto c = make_nccl_comm(MPI_COMM_WORLD, 120);
  EXPECT_EQ(c->backend(), "nccl");
  EXPECT_EQ(c->buffer_memory(), Memory::Device);
  check_broadcast(*c);
  check_allgather(*c);
  check_unequal_allgathers(*c);
  check_allreduce(*c);  // host data over MPI
  const Verdict v = agree(*c, c->rank() == 0 ? "x" : "");
  EXPECT_EQ(v.failed_rank, 0);
  // A host buffer is refused, naming the call, on every rank alike (no collective started).
  std::int64_t idx = 3;
  try {
    c->broadcast(&idx, sizeof idx, 0);
    ADD_FAILURE() << "NCCL broadcast accepted a host pointer";
  } catch (const ms::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not memory of this rank's GPU"), std::string::npos) << e.what();
  }
  c->barrier();
}

}  // namespace
}  // namespace ms::dist

// Every rank runs every test; the job fails when any rank failed.
int main(int argc, char** argv) {
  ms::dist::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (mpi.world_rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());  // rank 0 prints; failures still count
  }
  const int local = RUN_ALL_TESTS();
  std::int64_t failed = local != 0 ? 1 : 0;
  ms::dist::make_mpi_comm(MPI_COMM_WORLD)->allreduce_sum(&failed, 1);
  if (failed != 0 && mpi.world_rank() == 0) std::fprintf(stderr, "test_dist_mpi: %lld rank(s) failed\n", static_cast<long long>(failed));
  return failed != 0 ? 1 : 0;
}
