// The coordinator protocol of a sweep, over MPI_COMM_WORLD: the messages between rank 0's
// coordinator thread and the leaders of the other worker groups. A leader's request for work
// carries the report of its previous item (index, status, payload); the reply is the next index
// or -1 (stop). While it works, a leader's heartbeat thread sends its progress count
// (signals.hpp) whenever it moved, so the coordinator can tell a slow group from a hung one.
// Rank 0's own group 0 talks to the coordinator in process, not through this channel.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace ms::dist {

struct WorkReport {
  int group = 0;                      // sender's group (world rank / group size)
  std::int64_t index = -1;            // the item it finished; -1 on its first request
  std::int64_t status = 0;            // caller-defined
  std::vector<std::uint8_t> payload;  // caller-defined
};

// Coordinator side (rank 0). Methods are called from one thread.
class WorkServer {
 public:
  explicit WorkServer(int group_size) : group_size_(group_size) {}
  enum class Event { None, Request, Beat };
  // Non-blocking. Request: `report` holds it and the group waits for assign(). Beat: only
  // `report->group` is set (its progress moved).
  Event poll(WorkReport* report);
  void assign(int group, std::int64_t index);  // answers the group's pending request
  // Receives and discards heartbeats still queued (call once every group has stopped).
  void drain_beats();

 private:
  int group_size_;
  std::vector<std::uint8_t> buf_;
};

// Leader side (leaders of groups other than 0). Starts the heartbeat thread; stops it when the
// stop index arrives or on destruction.
class WorkClient {
 public:
  explicit WorkClient(double beat_interval_s);
  ~WorkClient();
  WorkClient(const WorkClient&) = delete;
  WorkClient& operator=(const WorkClient&) = delete;
  // Sends the report of the previous item (index -1 on the first call) and waits for the next
  // index; -1 means stop.
  std::int64_t request(std::int64_t prev_index, std::int64_t prev_status, const std::vector<std::uint8_t>& payload);

 private:
  void beat_loop();
  void stop_beats();
  double interval_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread beats_;
};

}  // namespace ms::dist
