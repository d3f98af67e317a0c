#include "mergesweep/sweep/failure.hpp"

#include <c10/util/Exception.h>

#include <chrono>
#include <cstdlib>
#include <new>
#include <sstream>
#include <thread>

#include "mergesweep/core/error.hpp"
#include "mergesweep/dist/comm.hpp"
#include "mergesweep/dist/progress.hpp"

namespace ms::sweep {
namespace {

// The kind is carried in front of the message ("kind: ...") from the failing rank.
GroupFailure from_verdict(const dist::Verdict& v, const char* phase) {
  const auto colon = v.error.find(": ");
  const std::string kind = colon == std::string::npos ? "error" : v.error.substr(0, colon);
  return GroupFailure(std::string(phase) + " on group rank " + std::to_string(v.failed_rank) + ": " + v.error, kind);
}

// c10::Error's what() carries a C++ backtrace in libtorch 1.13; the message alone is enough.
std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

}  // namespace

FailureInfo describe_current_exception() {
  try {
    throw;
  } catch (const ms::Error& e) {
    return {"error", e.what()};
  } catch (const c10::OutOfMemoryError& e) {
    return {"oom", first_line(e.what_without_backtrace())};
  } catch (const c10::Error& e) {
    const std::string msg = first_line(e.what_without_backtrace());
    if (msg.find("out of memory") != std::string::npos) return {"oom", msg};
    // A CUDA error (illegal address, device-side assert, launch failure) is sticky: the context
    // is unusable and every later config on this device would fail too.
    return {msg.find("CUDA error") != std::string::npos ? "device" : "torch", msg};
  } catch (const std::bad_alloc& e) {
    return {"oom", std::string("memory allocation failed (") + e.what() + ")"};
  } catch (const std::exception& e) {
    return {"exception", e.what()};
  } catch (...) {
    return {"exception", "an exception of unknown type"};
  }
}

void agreed(dist::Comm& comm, const char* phase, const std::function<void()>& fn) {
  std::string error;
  try {
    fn();
  } catch (const GroupFailure&) {
    throw;  // the group already agreed inside fn
  } catch (...) {
    const FailureInfo f = describe_current_exception();
    error = f.kind + ": " + f.message;
    if (error.size() == f.kind.size() + 2) error += "(no message)";
  }
  const dist::Verdict v = dist::agree(comm, error);
  if (!v.ok) throw from_verdict(v, phase);
}

void agree_reached(dist::Comm& comm, const char* phase) {
  const dist::Verdict v = dist::agree(comm, "");
  if (!v.ok) throw from_verdict(v, phase);
}

namespace {

// MS_TEST_FAIL_CONFIG, parsed once.
struct TestFailure {
  bool set = false;
  std::string id, rank, kind, phase = "merge";
  bool matches(const char* p, std::uint64_t config_id, int world_rank) const {
    return set && phase == p && (id == "any" || std::stoull(id, nullptr, 16) == config_id) &&
           (rank == "any" || std::stoi(rank) == world_rank);
  }
};

const TestFailure& test_failure() {
  static const TestFailure f = [] {
    TestFailure t;
    const char* e = std::getenv("MS_TEST_FAIL_CONFIG");
    if (e == nullptr || *e == '\0') return t;
    std::istringstream in(e);
    std::getline(in, t.id, ':');
    std::getline(in, t.rank, ':');
    std::getline(in, t.kind, ':');
    std::string phase;
    if (std::getline(in, phase, ':') && !phase.empty()) t.phase = phase;
    t.set = true;
    return t;
  }();
  return f;
}

}  // namespace

void inject_test_failure(const char* phase, std::uint64_t config_id, int world_rank) {
  const TestFailure& f = test_failure();
  if (!f.matches(phase, config_id, world_rank)) return;
  if (f.kind == "bad_alloc") throw std::bad_alloc();
  if (f.kind == "torch") TORCH_CHECK(false, "injected c10 failure (MS_TEST_FAIL_CONFIG)");
  if (f.kind == "device") TORCH_CHECK(false, "CUDA error: an illegal memory access was encountered (injected: MS_TEST_FAIL_CONFIG)");
  if (f.kind == "pace") {  // 0.4 s with progress: a sweep long enough for a signal to land mid-run
    for (int i = 0; i < 8; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50)), dist::note_progress();
    return;
  }
  if (f.kind == "slow" || f.kind == "hang") {  // 8 s with progress, or 120 s (the job ends first) without
    for (int i = 0; i < (f.kind == "slow" ? 160 : 2400); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (f.kind == "slow") dist::note_progress();
    }
    return;
  }
  if (f.kind == "error")
    fail("MS_TEST_FAIL_CONFIG", phase, "injected failure of config " + f.id + " on world rank " + f.rank);
}

bool inject_corrupt_report(std::uint64_t config_id, int world_rank) {
  const TestFailure& f = test_failure();
  return f.kind == "corrupt_report" && f.matches("report", config_id, world_rank);
}

}  // namespace ms::sweep
