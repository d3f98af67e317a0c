// Progress of a sweep on rank 0's stderr: a live bar (done/total, configs per minute, ETA) on a
// terminal, one plain line every `interval` seconds in a log, nothing with --quiet.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace ms::sweep {

class Progress {
 public:
  enum class Mode { Bar, Lines, Quiet };
  Progress(std::size_t total, Mode mode, double interval_s);
  static Mode detect(bool quiet);  // Bar when stderr is a terminal
  void update(std::size_t done, std::size_t failed, bool force = false);
  void finish(std::size_t done, std::size_t failed);
  std::string line(std::size_t done, std::size_t failed) const;

 private:
  std::size_t total_;
  Mode mode_;
  double interval_;
  std::chrono::steady_clock::time_point start_, last_;
  bool printed_ = false;
};

std::string format_duration(double seconds);

}  // namespace ms::sweep
