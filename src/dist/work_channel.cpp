// Blocking sends of small messages and Iprobe polling on MPI_COMM_WORLD, tags private to this file.
#include "mergesweep/dist/work_channel.hpp"

#include <chrono>
#include <cstring>

#include "mergesweep/core/error.hpp"
#include "mergesweep/dist/check.hpp"
#include "mergesweep/dist/progress.hpp"

namespace ms::dist {
namespace {

constexpr int kTagReport = 101;  // leader -> 0: [int64 index, int64 status] + payload bytes
constexpr int kTagAssign = 102;  // 0 -> leader: int64 index, or -1 (stop)
constexpr int kTagBeat = 103;    // leader -> 0: uint64 progress count

}  // namespace

WorkServer::Event WorkServer::poll(WorkReport* report) {
  int flag = 0;
  MPI_Status st;
  MS_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st));
  if (!flag) return Event::None;
  int count = 0;
  MS_MPI_CHECK(MPI_Get_count(&st, MPI_BYTE, &count));
  buf_.resize(static_cast<std::size_t>(count));
  MS_MPI_CHECK(MPI_Recv(buf_.data(), count, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
  report->group = st.MPI_SOURCE / group_size_;
  if (st.MPI_TAG == kTagBeat) return Event::Beat;
  if (st.MPI_TAG != kTagReport || count < 16) fail("", "mpi", "unexpected message (tag " + std::to_string(st.MPI_TAG) + ", " + std::to_string(count) + " bytes) from world rank " + std::to_string(st.MPI_SOURCE));
  std::int64_t head[2];
  std::memcpy(head, buf_.data(), sizeof head);
  report->index = head[0];
  report->status = head[1];
  report->payload.assign(buf_.begin() + sizeof head, buf_.end());
  return Event::Request;
}

void WorkServer::assign(int group, std::int64_t index) {
  MS_MPI_CHECK(MPI_Send(&index, 1, MPI_INT64_T, group * group_size_, kTagAssign, MPI_COMM_WORLD));
}

void WorkServer::drain_beats() {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    MS_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, kTagBeat, MPI_COMM_WORLD, &flag, &st));
    if (!flag) return;
    std::uint64_t count = 0;
    MS_MPI_CHECK(MPI_Recv(&count, 1, MPI_UINT64_T, st.MPI_SOURCE, kTagBeat, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
  }
}

WorkClient::WorkClient(double beat_interval_s) : interval_s_(beat_interval_s) {
  beats_ = std::thread([this] { beat_loop(); });
}

WorkClient::~WorkClient() {
  try {
    stop_beats();
  } catch (...) {  // destructor: the thread is joined; a failed last send has nowhere to go
  }
}

void WorkClient::stop_beats() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (beats_.joinable()) beats_.join();
}

// Sends the progress count when it moved since the last beat. Errors end the beats (the main
// thread's next request reports a broken world).
void WorkClient::beat_loop() {
  std::uint64_t last = progress_count();
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::duration<double>(interval_s_));
    if (stop_) return;
    const std::uint64_t now = progress_count();
    if (now == last) continue;
    last = now;
    if (MPI_Send(&now, 1, MPI_UINT64_T, 0, kTagBeat, MPI_COMM_WORLD) != MPI_SUCCESS) return;
  }
}

std::int64_t WorkClient::request(std::int64_t prev_index, std::int64_t prev_status, const std::vector<std::uint8_t>& payload) {
  std::vector<std::uint8_t> msg(16);
  const std::int64_t head[2] = {prev_index, prev_status};
  std::memcpy(msg.data(), head, sizeof head);
  msg.insert(msg.end(), payload.begin(), payload.end());
  MS_MPI_CHECK(MPI_Send(msg.data(), static_cast<int>(msg.size()), MPI_BYTE, 0, kTagReport, MPI_COMM_WORLD));
  std::int64_t next = -1;
  MS_MPI_CHECK(MPI_Recv(&next, 1, MPI_INT64_T, 0, kTagAssign, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
  note_progress();
  if (next < 0) stop_beats();
  return next;
}

}  // namespace ms::dist
