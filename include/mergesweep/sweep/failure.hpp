// A config that fails on any rank of a group fails on all of them, and the group goes on. Each
// rank runs its fallible part (merge, model build, scoring) inside agreed(): before the next
// collective the group agrees on success (dist::agree, one int64 allreduce when all went well),
// and when any rank failed every rank throws GroupFailure with the failing rank's message, so no
// rank is left waiting in a collective its peers never enter.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

namespace ms::dist { class Comm; }

namespace ms::sweep {

// Kinds of failure, the first word of a failure message: "error" (ms::Error: bad parameters, a
// failed check), "oom" (std::bad_alloc or a device out-of-memory), "device" (a CUDA error: the
// device's context is unusable, so the job stops for a requeue instead of failing every later
// config), "torch" (any other c10::Error), "exception" (any other std::exception).
struct FailureInfo {
  std::string kind;
  std::string message;
};
// Inside a catch block: the kind and message of the exception being handled.
FailureInfo describe_current_exception();

// Thrown on every rank of the group once it agreed that the config failed. what() is
// "<phase> on group rank <r>: <kind>: <message>".
class GroupFailure : public std::runtime_error {
 public:
  GroupFailure(const std::string& what, std::string kind) : std::runtime_error(what), kind_(std::move(kind)) {}
  const std::string& kind() const noexcept { return kind_; }

 private:
  std::string kind_;
};

// Runs `fn`, this rank's part of `phase`, then agrees with the group; throws GroupFailure when
// any rank's `fn` threw. A GroupFailure thrown inside `fn` (a nested agreement already made)
// passes through without a second agreement.
void agreed(dist::Comm& comm, const char* phase, const std::function<void()>& fn);
// For collectives inside a phase (a merge's reducer): the ranks that reach one have not failed;
// agree with a rank that failed before it. Throws GroupFailure when one did.
void agree_reached(dist::Comm& comm, const char* phase);

// Test hooks, read once from the environment: MS_TEST_FAIL_CONFIG=<config id hex or "any">:<world
// rank or "any">:<kind>[:<phase>] makes that rank throw in that phase ("merge", the default, or
// "eval") of that config, or (config id 0, phase "residents") while it reads its resident shards.
// Kinds: error (ms::Error), bad_alloc, torch (c10::Error), device (a c10::Error as a CUDA error), slow (no failure: 8 s of work that
// reports progress every 50 ms), hang (120 s without progress), for the silence detector;
// corrupt_report (phase "report": a remote leader's result reaches the coordinator truncated).
void inject_test_failure(const char* phase, std::uint64_t config_id, int world_rank);
bool inject_corrupt_report(std::uint64_t config_id, int world_rank);

}  // namespace ms::sweep
