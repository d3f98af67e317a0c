#include "mergesweep/core/gpu_binding.hpp"

#include <cstdlib>
#include <mutex>

namespace ms {
namespace {

std::mutex g_mutex;
std::optional<NodeSlot> g_mpi_split;  // set once by the MPI session, read by any thread

int parse_int(const char* v, int fallback) {
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (end == v || *end != '\0' || n < 0 || n > 1 << 20) ? fallback : static_cast<int>(n);
}

}  // namespace

std::optional<NodeSlot> node_slot_from_env(const std::function<const char*(const char*)>& getenv) {
  // Each launcher names its pair; the rank and size of one launcher are read together, so a
  // stale variable of another launcher cannot pair a rank with the wrong size.
  static const char* const kPairs[][2] = {{"OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
                                          {"SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"},
                                          {"MPI_LOCALRANKID", "MPI_LOCALNRANKS"}};
  for (const auto& pair : kPairs) {
    const int rank = parse_int(getenv(pair[0]), -1);
    if (rank < 0) continue;
    const int size = parse_int(getenv(pair[1]), 0);
    return NodeSlot{rank, size > 0 ? size : 1, pair[0]};
  }
  return std::nullopt;
}

NodeSlot choose_node_slot(const std::optional<NodeSlot>& mpi_split, const std::optional<NodeSlot>& env) {
  // The split is what MPI itself sees share this node; the environment is only the launcher's
  // claim (absent under some launchers, or inherited by a process that a wrapper restarted).
  if (mpi_split) return *mpi_split;
  if (env) return *env;
  return NodeSlot{};
}

NodeSlot node_slot() {
  std::optional<NodeSlot> split;
  {
    const std::lock_guard<std::mutex> lock(g_mutex);
    split = g_mpi_split;
  }
  return choose_node_slot(split, node_slot_from_env([](const char* name) { return std::getenv(name); }));
}

void register_mpi_node_slot(int rank, int size) {
  const std::lock_guard<std::mutex> lock(g_mutex);
  g_mpi_split = NodeSlot{rank, size > 0 ? size : 1, "mpi"};
}

int gpu_index(const NodeSlot& slot, int visible) {
  if (visible <= 0) return -1;
  return (slot.rank < 0 ? 0 : slot.rank) % visible;
}

}  // namespace ms
