// Rank 0's coordinator: hands out configs on request (dynamic scheduling, slowest first), receives
// results, and is the archive's only writer, committing a batch at least every batch_seconds. It
// runs on a second thread of rank 0 that sleeps between messages, so rank 0's main thread still
// computes as the leader of group 0. The messages themselves are dist::WorkServer/WorkClient.
//
// Failures never end the process from the thread: an exception there (an archive write that
// failed, a malformed message) stops the hand-out (every group gets the stop index at its next
// request) and finish() rethrows it on rank 0's main thread. A group whose progress stops for
// schedule.peer_timeout seconds (no heartbeat, no request) is hung or dead: the coordinator
// commits what it has and ends the job with dist::kExitDrained (75, requeue-able).
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mergesweep/archive/archive.hpp"
#include "mergesweep/dist/work_channel.hpp"
#include "mergesweep/sweep/failure.hpp"
#include "mergesweep/sweep/planner.hpp"
#include "mergesweep/sweep/progress.hpp"
#include "mergesweep/sweep/spec.hpp"

namespace ms::dist { class Comm; }

namespace ms::sweep {

enum class ItemStatus : std::int64_t { None = 0, Done = 1, Dropped = 2, Failed = 3 };

struct RunStats {
  std::size_t planned = 0, skipped = 0, run = 0, failed = 0, dropped = 0, not_started = 0;
  double wall_s = 0;
  bool stopped_by_signal = false;
  std::string device_failure;  // a group's CUDA error that stopped the job (empty: none)
};

class Coordinator {
 public:
  // `todo`: plan indices to run, in hand-out order. `num_groups` includes rank 0's own group 0;
  // the leaders of the others are world ranks group * group_size.
  Coordinator(const Plan& plan, std::vector<std::size_t> todo, archive::Writer& writer, const Schedule& sched,
              int num_groups, int group_size, Progress::Mode mode, std::size_t skipped);
  ~Coordinator();
  void start();
  // Rank 0's own group (main thread).
  std::int64_t next_local();
  // `failure`: kind and message when status is Failed (recorded in /failures with the next commit).
  void submit_local(std::int64_t index, ItemStatus status, archive::ConfigResult result, const FailureInfo& failure);
  // Waits until every group has stopped and every result is committed; rethrows an exception
  // of the coordinator thread or of an archive commit.
  RunStats finish();

 private:
  void loop();
  void serve();
  void handle_request(const dist::WorkReport& rep);
  bool idle_checks();  // true when every other group has stopped
  void end_silent_job(int group, std::int64_t index, double silent_s);
  void record_fatal_locked(std::exception_ptr e);
  std::int64_t next_locked(int group);
  void accept_locked(int group, std::int64_t index, ItemStatus status, archive::ConfigResult result,
                     const FailureInfo& failure);
  void commit_locked(bool force);

  const Plan& plan_;
  std::vector<std::size_t> todo_;
  std::size_t cursor_ = 0;
  archive::Writer& writer_;
  Schedule sched_;
  int num_groups_, group_size_;
  dist::WorkServer server_;
  std::vector<bool> stopped_;
  bool local_done_ = false;  // rank 0's own work loop has returned (finish() was called)
  std::map<int, std::int64_t> in_flight_;  // group -> index
  std::vector<double> last_progress_;      // group -> time its progress last moved
  std::uint64_t local_progress_ = 0;       // group 0's (this process's) progress count, last seen
  std::vector<archive::ConfigResult> pending_;
  std::vector<archive::FailureRecord> pending_failures_;
  RunStats stats_;
  Progress progress_;
  std::mutex mu_;
  std::thread thread_;
  double last_commit_ = 0;
  std::exception_ptr fatal_;
};

// The loop every rank runs: group leaders get a config index (rank 0 from `coord` directly,
// others through a dist::WorkClient), broadcast it to their group, all run `work`, the leader
// reports the result. `work` throws GroupFailure (failure.hpp) when the group agreed that the
// config failed; it is recorded as failed and the loop goes on. Returns when rank 0 hands out -1
// (plan done, a stop signal, or a coordinator failure).
using WorkFn = std::function<archive::ConfigResult(std::int64_t index, bool* dropped)>;
void work_loop(Coordinator* coord, dist::Comm& group, bool leader, int world_rank, double beat_interval_s,
               const WorkFn& work);

}  // namespace ms::sweep
