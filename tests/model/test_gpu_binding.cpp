// The GPU choice's logic (core/gpu_binding.hpp), without a GPU or MPI: where the node slot comes
// from (MPI's split over the launcher's environment, a launcher's rank and size read together)
// and the index it gives.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/model/device.hpp"

namespace ms {
namespace {

// A fake environment for node_slot_from_env.
auto env_of(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

TEST(GpuBinding, EnvironmentOfEachLauncher) {
  EXPECT_FALSE(node_slot_from_env(env_of({})).has_value());
  auto s = node_slot_from_env(env_of({{"OMPI_COMM_WORLD_LOCAL_RANK", "3"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}}));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->rank, 3);
  EXPECT_EQ(s->size, 4);
  EXPECT_EQ(s->source, "OMPI_COMM_WORLD_LOCAL_RANK");
  s = node_slot_from_env(env_of({{"SLURM_LOCALID", "1"}, {"SLURM_NTASKS_PER_NODE", "2"}}));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->rank, 1);
  EXPECT_EQ(s->size, 2);
  // Open MPI's pair wins over a SLURM pair (mpirun inside an allocation), and a rank is never
  // paired with another launcher's size.
  s = node_slot_from_env(env_of({{"OMPI_COMM_WORLD_LOCAL_RANK", "0"}, {"SLURM_LOCALID", "5"}, {"SLURM_NTASKS_PER_NODE", "8"}}));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->rank, 0);
  EXPECT_EQ(s->size, 1);
  // Garbage is no rank; a bad size is 1.
  EXPECT_FALSE(node_slot_from_env(env_of({{"MPI_LOCALRANKID", "x1"}})).has_value());
  s = node_slot_from_env(env_of({{"MPI_LOCALRANKID", "2"}, {"MPI_LOCALNRANKS", "-3"}}));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->size, 1);
}

TEST(GpuBinding, MpiSplitOverEnvironment) {
  const NodeSlot split{1, 2, "mpi"};
  const NodeSlot env{3, 4, "OMPI_COMM_WORLD_LOCAL_RANK"};
  EXPECT_EQ(choose_node_slot(split, env).source, "mpi");
  EXPECT_EQ(choose_node_slot(split, env).rank, 1);
  EXPECT_EQ(choose_node_slot(std::nullopt, env).rank, 3);
  EXPECT_EQ(choose_node_slot(std::nullopt, env).size, 4);
  const NodeSlot none = choose_node_slot(std::nullopt, std::nullopt);
  EXPECT_EQ(none.rank, 0);
  EXPECT_EQ(none.size, 1);
  EXPECT_EQ(none.source, "none");
}

TEST(GpuBinding, IndexSpreadsTheNodeOverItsGpus) {
  EXPECT_EQ(gpu_index(NodeSlot{0, 4, ""}, 0), -1);
  EXPECT_EQ(gpu_index(NodeSlot{0, 4, ""}, 2), 0);
  EXPECT_EQ(gpu_index(NodeSlot{3, 4, ""}, 2), 1);
  EXPECT_EQ(gpu_index(NodeSlot{5, 8, ""}, 8), 5);
  EXPECT_EQ(gpu_index(NodeSlot{-1, 1, ""}, 8), 0);
}

// resolve_device goes through the same function: on this machine the CPU, or the slot's GPU.
TEST(GpuBinding, ResolveDeviceUsesTheSameIndex) {
  const int gpus = model::visible_cuda_devices();
  const c10::Device d = model::resolve_device("auto", 3, "", "--device");
  if (gpus == 0) {
    EXPECT_TRUE(d.is_cpu());
  } else {
    EXPECT_EQ(d.index(), gpu_index(NodeSlot{3, 4, ""}, gpus));
  }
}

}  // namespace
}  // namespace ms
