#include "mergesweep/dist/progress.hpp"

#include <atomic>

#include "mergesweep/dist/signals.hpp"

namespace ms::dist {
namespace {
std::atomic<std::uint64_t> g_progress{0};
}  // namespace

void note_progress() { g_progress.fetch_add(1, std::memory_order_relaxed); }
std::uint64_t progress_count() { return g_progress.load(std::memory_order_relaxed); }

bool poll_drop_between_blocks() {
  note_progress();
  return drop_requested();
}

}  // namespace ms::dist
