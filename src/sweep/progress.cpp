#include "mergesweep/sweep/progress.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace ms::sweep {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const long t = std::lround(s);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

Progress::Progress(std::size_t total, Mode mode, double interval_s)
    : total_(total), mode_(mode), interval_(interval_s), start_(std::chrono::steady_clock::now()), last_(start_) {}

Progress::Mode Progress::detect(bool quiet) {
  if (quiet) return Mode::Quiet;
  return isatty(STDERR_FILENO) ? Mode::Bar : Mode::Lines;
}

std::string Progress::line(std::size_t done, std::size_t failed) const {
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const auto d = static_cast<double>(done), total = static_cast<double>(total_);  // counts far below 2^53
  const double rate = el > 0 ? d / el * 60.0 : 0.0;
  const double eta = done > 0 ? el / d * static_cast<double>(total_ - std::min(done, total_)) : NAN;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%zu/%zu configs (%.0f%%), %.1f/min, elapsed %s, ETA %s%s", done, total_,
                total_ ? 100.0 * d / total : 100.0, rate, format_duration(el).c_str(), format_duration(eta).c_str(),
                failed ? (", " + std::to_string(failed) + " failed").c_str() : "");
  return buf;
}

void Progress::update(std::size_t done, std::size_t failed, bool force) {
  if (mode_ == Mode::Quiet) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (mode_ == Mode::Bar) {
    if (!force && since < 0.2) return;
    const int width = 30;
    const int fill = total_ ? static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total_)) : width;
    std::string bar(static_cast<std::size_t>(fill), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r[%s] %s\033[K", bar.c_str(), line(done, failed).c_str());
    printed_ = true;
  } else {
    if (!force && since < interval_) return;
    std::fprintf(stderr, "mergesweep: progress: %s\n", line(done, failed).c_str());
  }
  std::fflush(stderr);
  last_ = now;
}

void Progress::finish(std::size_t done, std::size_t failed) {
  if (mode_ == Mode::Quiet) return;
  update(done, failed, true);
  if (mode_ == Mode::Bar && printed_) std::fprintf(stderr, "\n");
}

}  // namespace ms::sweep
