// Async-signal-safe: the handler writes lock-free atomics only.
#include "mergesweep/dist/signals.hpp"

#include <atomic>
#include <csignal>
#include <initializer_list>
#include <string>

namespace ms::dist {
namespace {

std::atomic<int> g_signal{0};
std::atomic<int> g_count{0};
std::atomic<bool> g_drop{false};

void on_signal(int sig) {
  g_signal.store(sig);
  const int n = g_count.fetch_add(1) + 1;
  if (sig != SIGUSR2 || n > 1) g_drop.store(true);
}

}  // namespace

void install_drain_handlers() {
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGINT, SIGUSR2}) sigaction(sig, &sa, nullptr);
}

bool stop_requested() { return g_count.load() > 0; }
bool drop_requested() { return g_drop.load(); }
int last_signal() { return g_signal.load(); }

std::string describe_stop() {
  const int sig = g_signal.load();
  const std::string name = sig == SIGUSR2 ? "SIGUSR2" : sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT"
                           : sig == 0     ? "a stop request"
                                          : "signal " + std::to_string(sig);
  if (!drop_requested()) return "stopped by " + name + " (a drain: the configs in flight were finished)";
  return "stopped by " + name + " (configs in flight were dropped; under mpirun, Ctrl-C and kill reach the ranks as "
         "SIGTERM, and mpirun exits 1 whatever the ranks return)";
}

void request_stop(bool drop) {
  g_count.fetch_add(1);
  if (drop) g_drop.store(true);
}

}  // namespace ms::dist
