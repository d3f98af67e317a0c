// One rank of a worker group. Holds its shard of the base and of every task vector (balanced by
// bytes, read once per sweep), the task and probe packs, and runs whole configs with the other
// ranks of its group: merge its shard, share the merged tensors, split the evaluation items,
// reduce. Every number it produces is independent of the group size and of which group runs it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mergesweep/archive/archive.hpp"
#include "mergesweep/sweep/planner.hpp"
#include "mergesweep/sweep/spec.hpp"

namespace at { class Tensor; }
namespace ms::dist { class Comm; }

namespace ms::sweep {

// Which rank of a group of `size` holds each tensor: largest first onto the least loaded rank
// (ties: lower rank), a pure function of the names and sizes.
std::vector<int> assign_shards(const std::vector<std::string>& names, const std::vector<std::uint64_t>& bytes, int size);

class Worker {
 public:
  Worker(const SweepSpec& spec, dist::Comm& group, int group_index);
  ~Worker();

  // Collective over the group. `dropped` is set (and the result empty) when a drop signal
  // arrived mid-config. Throws GroupFailure (failure.hpp) on every rank when the config failed
  // on any rank; the worker is then ready for the next config.
  archive::ConfigResult run(const PlannedConfig& c, bool* dropped);
  std::uint64_t resident_bytes() const;
  const std::vector<archive::TaskRecord>& task_records() const;
  // What this rank's allgathers of the merged model moved: bytes received from its peers, summed
  // over every gather so far, and the number of gathers (one per config that reached it).
  struct GatherTraffic {
    std::uint64_t received = 0, gathers = 0;
    std::uint64_t model_bytes = 0;  // the whole merged model in the eval dtype (B)
  };
  GatherTraffic gather_traffic() const;

 private:
  archive::ConfigResult run_agreed(const PlannedConfig& c, bool* dropped);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sums that do not depend on the thread count: fixed 4096-element chunks, each summed in double,
// then the chunks in order.
double chunked_dot(const float* a, const float* b, std::int64_t n);
double chunked_sqdiff(const float* a, const float* b, std::int64_t n);
// Tensor forms: the loops above for contiguous float32 CPU tensors (chunked_sqdiff also for a
// bf16/f16 second operand, widened in the loop), else the device-generic twin.
double chunked_dot(const at::Tensor& a, const at::Tensor& b);
double chunked_sqdiff(const at::Tensor& a, const at::Tensor& b);
// The twins, in ATen ops on the tensors' device: the same 4096-element chunks, each summed in
// double there, the chunk sums added in order on the host. Equal to the loops up to the order of
// the additions inside a chunk (tests/sweep/test_chunked.cpp).
double chunked_dot_aten(const at::Tensor& a, const at::Tensor& b);
double chunked_sqdiff_aten(const at::Tensor& a, const at::Tensor& b);

}  // namespace ms::sweep
