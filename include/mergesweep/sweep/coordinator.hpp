// Rank 0's coordinator: hands out configs on request (dynamic scheduling, slowest first), receives
// results, and is the archive's only writer, committing a batch at least every batch_seconds. It
// runs on a second thread of rank 0 that sleeps between messages, so rank 0's main thread still
// computes as the leader of group 0.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mergesweep/archive/archive.hpp"
#include "mergesweep/sweep/planner.hpp"
#include "mergesweep/sweep/progress.hpp"
#include "mergesweep/sweep/spec.hpp"

namespace ms::dist { class Comm; }

namespace ms::sweep {

// Message tags on MPI_COMM_WORLD between group leaders and rank 0.
inline constexpr int kTagWork = 101;    // leader -> 0: [int64 index, int64 status] + result bytes
inline constexpr int kTagAssign = 102;  // 0 -> leader: int64 index, or -1 (stop)

enum class ItemStatus : std::int64_t { None = 0, Done = 1, Dropped = 2, Failed = 3 };

struct RunStats {
  std::size_t planned = 0, skipped = 0, run = 0, failed = 0, dropped = 0, not_started = 0;
  double wall_s = 0;
  bool stopped_by_signal = false;
};

class Coordinator {
 public:
  // `todo`: plan indices to run, in hand-out order. `num_groups` includes rank 0's own group 0;
  // the leaders of the others are world ranks group * group_size.
  Coordinator(const Plan& plan, std::vector<std::size_t> todo, archive::Writer& writer, const Schedule& sched,
              int num_groups, Progress::Mode mode, std::size_t skipped);
  ~Coordinator();
  void start();
  // Rank 0's own group (main thread).
  std::int64_t next_local();
  void submit_local(std::int64_t index, ItemStatus status, archive::ConfigResult result, const std::string& error);
  RunStats finish();  // waits until every group has stopped and every result is committed

 private:
  void loop();
  std::int64_t next_locked(int group);
  void accept_locked(int group, std::int64_t index, ItemStatus status, archive::ConfigResult result,
                     const std::string& error);
  void commit_locked(bool force);

  const Plan& plan_;
  std::vector<std::size_t> todo_;
  std::size_t cursor_ = 0;
  archive::Writer& writer_;
  Schedule sched_;
  int num_groups_;
  std::vector<bool> stopped_;
  std::map<int, std::pair<std::int64_t, double>> in_flight_;  // group -> (index, start time)
  std::vector<archive::ConfigResult> pending_;
  RunStats stats_;
  Progress progress_;
  std::mutex mu_;
  std::thread thread_;
  double last_commit_ = 0;
  std::string fatal_;
};



// The loop every rank runs: group leaders get a config index (rank 0 from `coord` directly,
// others by message), broadcast it to their group, all run `work`, the leader reports the result.
// Returns when rank 0 hands out -1 (plan done or a stop signal).
using WorkFn = std::function<archive::ConfigResult(std::int64_t index, bool* dropped)>;
void work_loop(Coordinator* coord, dist::Comm& group, bool leader, int world_rank, const WorkFn& work);

}  // namespace ms::sweep
