#include "mergesweep/sweep/coordinator.hpp"

#include <chrono>
#include <cstdio>
#include <utility>

#include "mergesweep/core/error.hpp"
#include "mergesweep/dist/comm.hpp"
#include "mergesweep/dist/mpi_comm.hpp"
#include "mergesweep/dist/progress.hpp"
#include "mergesweep/dist/signals.hpp"
#include "mergesweep/model/compute_threads.hpp"
#include "mergesweep/sweep/failure.hpp"
#include "mergesweep/sweep/result_codec.hpp"

namespace ms::sweep {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string describe(const PlannedConfig& c) {
  std::string m;
  for (int k : c.members) m += (m.empty() ? "" : ",") + std::to_string(k);
  if (c.kind != ConfigKind::Merge) return kind_name(c.kind) + (m.empty() ? "" : " {" + m + "}");
  return c.method() + "(" + c.params() + ") {" + m + "}";
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A remote leader reports a failure as "<kind>\n<message>".
std::vector<std::uint8_t> encode_failure(const FailureInfo& f) {
  const std::string s = f.kind + "\n" + f.message;
  return {s.begin(), s.end()};
}
FailureInfo decode_failure(const std::vector<std::uint8_t>& payload) {
  const std::string s(payload.begin(), payload.end());
  const auto nl = s.find('\n');
  if (nl == std::string::npos) return {"exception", s};
  return {s.substr(0, nl), s.substr(nl + 1)};
}

std::string what_of(std::exception_ptr e) {
  try {
    std::rethrow_exception(std::move(e));
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception of unknown type";
  }
}

}  // namespace

Coordinator::Coordinator(const Plan& plan, std::vector<std::size_t> todo, archive::Writer& writer, const Schedule& sched,
                         int num_groups, int group_size, Progress::Mode mode, std::size_t skipped)
    : plan_(plan),
      todo_(std::move(todo)),
      writer_(writer),
      sched_(sched),
      num_groups_(num_groups),
      group_size_(group_size),
      server_(group_size),
      stopped_(static_cast<std::size_t>(num_groups), false),
      last_progress_(static_cast<std::size_t>(num_groups), now_s()),
      progress_(todo_.size(), mode, sched.progress_interval) {
  stats_.planned = plan.configs.size();
  stats_.skipped = skipped;
  last_commit_ = now_s();
}

Coordinator::~Coordinator() {
  if (thread_.joinable()) thread_.join();
}

void Coordinator::start() {
  if (num_groups_ > 1) thread_ = std::thread([this] { loop(); });
}

std::int64_t Coordinator::next_locked(int group) {
  if (dist::stop_requested()) stats_.stopped_by_signal = true;
  if (stats_.stopped_by_signal || fatal_ || cursor_ >= todo_.size()) {
    stopped_[static_cast<std::size_t>(group)] = true;
    in_flight_.erase(group);
    return -1;
  }
  const auto idx = static_cast<std::int64_t>(todo_[cursor_++]);
  in_flight_[group] = idx;
  last_progress_[static_cast<std::size_t>(group)] = now_s();
  return idx;
}

void Coordinator::accept_locked(int group, std::int64_t index, ItemStatus status, archive::ConfigResult result,
                                const FailureInfo& failure) {
  in_flight_.erase(group);
  if (status == ItemStatus::Done) {
    pending_.push_back(std::move(result));
    ++stats_.run;
  } else if (status == ItemStatus::Dropped) {
    ++stats_.dropped;
  } else if (status == ItemStatus::Failed && failure.kind == "device") {
    // Not the config's fault: the group's GPU context is gone. The config is left undone (the
    // resumed job runs it), and the job stops for a requeue, as on SLURM's drain signal.
    ++stats_.dropped;
    if (stats_.device_failure.empty()) stats_.device_failure = failure.message;
    std::fprintf(stderr, "\nmergesweep: group %d: %s; stopping the job for a requeue\n", group, failure.message.c_str());
    dist::request_stop(false);
  } else if (status == ItemStatus::Failed) {
    ++stats_.failed;
    const PlannedConfig& c = plan_.configs[static_cast<std::size_t>(index)];
    std::fprintf(stderr, "\nmergesweep: config %016llx %s failed: %s\n", static_cast<unsigned long long>(c.id),
                 describe(c).c_str(), failure.message.c_str());
    pending_failures_.push_back({config_record(c), failure.kind, failure.message, group, 0, unix_now()});
  }
  commit_locked(false);
  progress_.update(stats_.run, stats_.failed);
}

void Coordinator::record_fatal_locked(std::exception_ptr e) {
  if (!fatal_) fatal_ = std::move(e);
}

// A failed archive write stops the hand-out and is rethrown by finish(); the results of the
// failed batch are not committed (the rerun redoes them).
void Coordinator::commit_locked(bool force) {
  if ((pending_.empty() && pending_failures_.empty()) || fatal_) return;
  const double t = now_s();
  if (!force && t - last_commit_ < sched_.batch_seconds && pending_.size() < 4096) return;
  try {
    writer_.append(pending_, pending_failures_);
  } catch (...) {
    record_fatal_locked(std::current_exception());
  }
  pending_.clear();
  pending_failures_.clear();
  last_commit_ = t;
}

std::int64_t Coordinator::next_local() {
  std::lock_guard<std::mutex> lock(mu_);
  return next_locked(0);
}

void Coordinator::submit_local(std::int64_t index, ItemStatus status, archive::ConfigResult result,
                               const FailureInfo& failure) {
  std::lock_guard<std::mutex> lock(mu_);
  accept_locked(0, index, status, std::move(result), failure);
}

// An exception stops the hand-out; the groups still get their stop index, then finish() rethrows.
// Failing again while only handing out stops (MPI itself broken) leaves nothing but ending the job.
void Coordinator::loop() {
  try {
    serve();
    return;
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    record_fatal_locked(std::current_exception());
  }
  try {
    serve();
  } catch (const std::exception& e) {
    std::exception_ptr first;
    {
      std::lock_guard<std::mutex> lock(mu_);
      first = fatal_;
    }
    std::fprintf(stderr, "\nmergesweep: error: %s\nmergesweep: error: the coordinator cannot reach the worker groups: %s\n",
                 what_of(first).c_str(), e.what());
    dist::MpiSession::abort_job(kExitError);
  }
}

// Serves the other groups' leaders. Iprobe + short sleeps: a blocking receive would spin a core.
void Coordinator::serve() {
  for (;;) {
    dist::WorkReport rep;
    const auto event = server_.poll(&rep);
    if (event == dist::WorkServer::Event::Request) {
      handle_request(rep);
    } else if (event == dist::WorkServer::Event::Beat) {
      std::lock_guard<std::mutex> lock(mu_);
      last_progress_[static_cast<std::size_t>(rep.group)] = now_s();
    } else {
      if (idle_checks()) {
        server_.drain_beats();
        return;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
}

void Coordinator::handle_request(const dist::WorkReport& rep) {
  std::int64_t reply = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      if (rep.index >= 0) {
        const auto status = static_cast<ItemStatus>(rep.status);
        archive::ConfigResult r;
        FailureInfo failure;
        if (status == ItemStatus::Done) r = decode_result(rep.payload);
        if (status == ItemStatus::Failed) failure = decode_failure(rep.payload);
        accept_locked(rep.group, rep.index, status, std::move(r), failure);
      }
    } catch (const std::exception& e) {  // the group still gets its (stop) reply
      record_fatal_locked(std::make_exception_ptr(
          ms::Error("", "coordinator", "the report of worker group " + std::to_string(rep.group) + " (world rank " +
                                           std::to_string(rep.group * group_size_) + ") could not be taken: " + e.what())));
    }
    reply = next_locked(rep.group);
  }
  server_.assign(rep.group, reply);
}

// Between messages: commit, progress line, and the silence detector. Group 0's progress is this
// process's own count (its leader is rank 0's main thread).
bool Coordinator::idle_checks() {
  std::lock_guard<std::mutex> lock(mu_);
  commit_locked(false);
  progress_.update(stats_.run, stats_.failed);
  // Served until every remote group has stopped and group 0 (this process) holds no config: a
  // hung group 0 running the last config must still be seen by the silence detector below.
  bool all = true;
  for (int k = 1; k < num_groups_; ++k) all = all && stopped_[static_cast<std::size_t>(k)];
  if (all && (local_done_ || in_flight_.count(0) == 0)) return true;
  const double t = now_s();
  if (const std::uint64_t p = dist::progress_count(); p != local_progress_) {
    local_progress_ = p;
    last_progress_[0] = t;
  }
  for (const auto& [grp, index] : in_flight_) {
    const double silent = t - last_progress_[static_cast<std::size_t>(grp)];
    if (silent > sched_.peer_timeout) end_silent_job(grp, index, silent);
  }
  return false;
}

// A group whose progress stopped holds a dead or hung rank: commit what is finished and end the
// job with the requeue status (the rerun resumes; the config in flight runs again).
void Coordinator::end_silent_job(int group, std::int64_t index, double silent_s) {
  commit_locked(true);
  std::fprintf(stderr, "\nmergesweep: error: worker group %d (world ranks %d..%d) made no progress on config %016llx for "
                       "%.0f s (schedule.peer_timeout %.0f s): a rank is hung or dead; ending the job, rerun to resume "
                       "(exit status %d)\n",
               group, group * group_size_, group * group_size_ + group_size_ - 1,
               static_cast<unsigned long long>(plan_.configs[static_cast<std::size_t>(index)].id), silent_s,
               sched_.peer_timeout, dist::kExitDrained);
  try {
    writer_.close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mergesweep: error: %s\n", e.what());
  }
  dist::MpiSession::abort_job(dist::kExitDrained);
}

RunStats Coordinator::finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    local_done_ = true;
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  commit_locked(true);
  progress_.finish(stats_.run, stats_.failed);
  stats_.not_started = todo_.size() - std::min(cursor_, todo_.size());
  if (dist::stop_requested()) stats_.stopped_by_signal = true;
  if (fatal_) std::rethrow_exception(fatal_);
  return stats_;
}

void work_loop(Coordinator* coord, dist::Comm& group, bool leader, int world_rank, double beat_interval_s,
               const WorkFn& work) {
  std::unique_ptr<dist::WorkClient> client;
  if (leader && world_rank != 0) client = std::make_unique<dist::WorkClient>(beat_interval_s);
  std::vector<std::uint8_t> outgoing;  // a remote leader's finished result, sent with its next request
  std::int64_t prev_index = -1;
  ItemStatus prev_status = ItemStatus::None;
  for (;;) {
    std::int64_t idx = -1;
    if (leader) {
      idx = world_rank == 0 ? coord->next_local()
                            : client->request(prev_index, static_cast<std::int64_t>(prev_status), outgoing);
    }
    group.host_broadcast(&idx, sizeof idx, 0);
    if (idx < 0) break;
    bool dropped = false;
    archive::ConfigResult result;
    FailureInfo failure;
    try {
      result = work(idx, &dropped);
    } catch (const GroupFailure& e) {  // every rank of the group throws it: they move on together
      failure = {e.kind(), e.what()};
    }
    model::release_free_memory();  // the config's buffers are freed: keep the resident set at what is live
    const ItemStatus status = !failure.kind.empty() ? ItemStatus::Failed : dropped ? ItemStatus::Dropped : ItemStatus::Done;
    if (!leader) continue;
    if (world_rank == 0) {
      coord->submit_local(idx, status, std::move(result), failure);
    } else {
      prev_index = idx;
      prev_status = status;
      outgoing = status == ItemStatus::Done ? encode_result(result) : encode_failure(failure);
      if (status == ItemStatus::Done && inject_corrupt_report(result.config.id, world_rank))
        outgoing.resize(outgoing.size() / 2);
    }
  }
}

}  // namespace ms::sweep
