#include "mergesweep/sweep/coordinator.hpp"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "mergesweep/core/error.hpp"
#include "mergesweep/dist/mpi_comm.hpp"
#include "mergesweep/dist/signals.hpp"
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

}  // namespace

Coordinator::Coordinator(const Plan& plan, std::vector<std::size_t> todo, archive::Writer& writer, const Schedule& sched,
                         int num_groups, Progress::Mode mode, std::size_t skipped)
    : plan_(plan),
      todo_(std::move(todo)),
      writer_(writer),
      sched_(sched),
      num_groups_(num_groups),
      stopped_(static_cast<std::size_t>(num_groups), false),
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
  if (stats_.stopped_by_signal || cursor_ >= todo_.size()) {
    stopped_[static_cast<std::size_t>(group)] = true;
    return -1;
  }
  const auto idx = static_cast<std::int64_t>(todo_[cursor_++]);
  in_flight_[group] = {idx, now_s()};
  return idx;
}

void Coordinator::accept_locked(int group, std::int64_t index, ItemStatus status, archive::ConfigResult result,
                                const std::string& error) {
  in_flight_.erase(group);
  if (status == ItemStatus::Done) {
    pending_.push_back(std::move(result));
    ++stats_.run;
  } else if (status == ItemStatus::Dropped) {
    ++stats_.dropped;
  } else if (status == ItemStatus::Failed) {
    ++stats_.failed;
    std::fprintf(stderr, "\nmergesweep: config %016llx %s failed: %s\n",
                 static_cast<unsigned long long>(plan_.configs[static_cast<std::size_t>(index)].id),
                 describe(plan_.configs[static_cast<std::size_t>(index)]).c_str(), error.c_str());
  }
  commit_locked(false);
  progress_.update(stats_.run, stats_.failed);
}

void Coordinator::commit_locked(bool force) {
  if (pending_.empty()) return;
  const double t = now_s();
  if (!force && t - last_commit_ < sched_.batch_seconds && pending_.size() < 4096) return;
  writer_.append(pending_);
  pending_.clear();
  last_commit_ = t;
}

std::int64_t Coordinator::next_local() {
  std::lock_guard<std::mutex> lock(mu_);
  return next_locked(0);
}

void Coordinator::submit_local(std::int64_t index, ItemStatus status, archive::ConfigResult result, const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  accept_locked(0, index, status, std::move(result), error);
}

// Serves the other groups' leaders. Iprobe + short sleeps: a blocking receive would spin a core.
void Coordinator::loop() {
  int group_size = 1;
  {
    int world = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    group_size = world / num_groups_;
  }
  std::vector<std::uint8_t> buf;
  for (;;) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kTagWork, MPI_COMM_WORLD, &flag, &st);
    if (flag) {
      int count = 0;
      MPI_Get_count(&st, MPI_BYTE, &count);
      buf.resize(static_cast<std::size_t>(count));
      MPI_Recv(buf.data(), count, MPI_BYTE, st.MPI_SOURCE, kTagWork, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      const int group = st.MPI_SOURCE / group_size;
      std::int64_t head[2];
      std::memcpy(head, buf.data(), sizeof head);
      std::int64_t reply;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (head[0] >= 0) {
          const auto status = static_cast<ItemStatus>(head[1]);
          std::vector<std::uint8_t> payload(buf.begin() + sizeof head, buf.end());
          archive::ConfigResult r;
          std::string error;
          if (status == ItemStatus::Done) r = decode_result(payload);
          if (status == ItemStatus::Failed) error.assign(payload.begin(), payload.end());
          accept_locked(group, head[0], status, std::move(r), error);
        }
        reply = next_locked(group);
      }
      MPI_Send(&reply, 1, MPI_INT64_T, st.MPI_SOURCE, kTagAssign, MPI_COMM_WORLD);
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      commit_locked(false);
      progress_.update(stats_.run, stats_.failed);
      bool all = true;
      for (int k = 1; k < num_groups_; ++k) all = all && stopped_[static_cast<std::size_t>(k)];
      if (all) return;
      // A group silent for longer than peer_timeout holds a dead or hung rank: end the job
      // rather than wait forever (what is committed stays; the rerun resumes).
      for (const auto& [grp, item] : in_flight_) {
        if (now_s() - item.second > sched_.peer_timeout) {
          commit_locked(true);
          std::fprintf(stderr, "\nmergesweep: error: worker group %d (world ranks %d..%d) has not finished config %016llx "
                               "after %.0f s (schedule.peer_timeout); ending the job, rerun to resume\n",
                       grp, grp * group_size, grp * group_size + group_size - 1,
                       static_cast<unsigned long long>(plan_.configs[static_cast<std::size_t>(item.first)].id),
                       sched_.peer_timeout);
          writer_.close();
          dist::MpiSession::abort_job(kExitError);
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

RunStats Coordinator::finish() {
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  commit_locked(true);
  progress_.finish(stats_.run, stats_.failed);
  stats_.not_started = todo_.size() - std::min(cursor_, todo_.size());
  if (dist::stop_requested()) stats_.stopped_by_signal = true;
  return stats_;
}

}  // namespace ms::sweep
