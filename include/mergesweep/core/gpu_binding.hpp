// Which GPU a process binds: the one home for that choice. model::resolve_device (every verb's
// --device and the sweep's schedule.device) and the NCCL communicator both ask gpu_index(), so a
// rank's tensors and its NCCL communicator can never sit on different GPUs.
//
// A process's slot on its node (its rank among the node's ranks, and how many there are) comes
// from MPI when an MPI session registered it (MPI_Comm_split_type over the shared-memory domain:
// the ranks that really share this node), else from the launcher's environment
// (OMPI_COMM_WORLD_LOCAL_RANK/SIZE, SLURM_LOCALID/SLURM_NTASKS_PER_NODE, MPI_LOCALRANKID/
// MPI_LOCALNRANKS: a verb started under mpirun or srun without MPI of its own), else rank 0 of 1.
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace ms {

struct NodeSlot {
  int rank = 0;                // this process's index among the processes of its node
  int size = 1;                // how many share the node
  std::string source = "none"; // "mpi", the environment variable read, or "none"
};

// The launcher's numbering, read through `getenv` (tests pass their own); nullopt when no
// launcher variable is set. A size variable that is missing or not positive reads as 1.
std::optional<NodeSlot> node_slot_from_env(const std::function<const char*(const char*)>& getenv);
// Pure choice: the MPI split when there is one, else the environment, else rank 0 of 1.
NodeSlot choose_node_slot(const std::optional<NodeSlot>& mpi_split, const std::optional<NodeSlot>& env);
// This process's slot: choose_node_slot(the registered split, the real environment).
NodeSlot node_slot();
// Called once by dist::MpiSession after MPI_Init with this rank's place in the node split.
void register_mpi_node_slot(int rank, int size);

// The GPU for `slot` among `visible` devices: rank % visible, so the ranks of a node spread over
// its GPUs; -1 when none is visible.
int gpu_index(const NodeSlot& slot, int visible);
inline int gpu_index(int visible) { return gpu_index(node_slot(), visible); }

}  // namespace ms
