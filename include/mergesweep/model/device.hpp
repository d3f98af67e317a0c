// The device a process computes on: one device per rank. "cpu", "cuda", or "auto" (cuda when a
// GPU is visible). A rank binds GPU node rank % visible devices (core/gpu_binding.hpp, shared
// with the NCCL communicator), so ranks on one node spread over its GPUs. One home for this
// choice: the sweep's schedule.device, `merge --device` and `eval --device` all resolve here.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace ms::model {

// GPUs this process sees (0 in a build without CUDA, or without a visible GPU).
int visible_cuda_devices();
// `choice` is "auto", "cpu" or "cuda"; a GPU is ms::gpu_index(local_rank, visible), where
// local_rank is normally ms::node_slot().rank (core/gpu_binding.hpp: MPI's node split, else the
// launcher's environment). Errors (an unknown choice, "cuda" without a visible GPU) name
// `file` and `field` (e.g. the spec and "schedule.device", or "" and "--device").
c10::Device resolve_device(const std::string& choice, int local_rank, const std::string& file, const std::string& field);

// Bytes of memory the device offers: a GPU's total memory; on the CPU the cgroup limit of this
// process when there is one, else the physical memory. `source` receives where the figure came
// from ("GPU 0 total", "cgroup memory.max", "physical memory").
std::uint64_t device_memory_bytes(c10::Device device, std::string* source = nullptr);

}  // namespace ms::model
