#include "mergesweep/model/device.hpp"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <unistd.h>

#include <fstream>
#if MS_HAVE_CUDART
#include <cuda_runtime_api.h>
#endif

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/gpu_binding.hpp"

namespace ms::model {

int visible_cuda_devices() {
  if (!at::hasCUDA()) return 0;
  return at::detail::getCUDAHooks().getNumGPUs();
}

c10::Device resolve_device(const std::string& choice, int local_rank, const std::string& file, const std::string& field) {
  if (choice != "auto" && choice != "cpu" && choice != "cuda") fail(file, field, "expected auto, cpu or cuda, got '" + choice + "'");
  const int gpus = choice == "cpu" ? 0 : visible_cuda_devices();
  if (choice == "cuda" && gpus == 0)
    fail(file, field, "cuda was asked for, but this process sees no GPU (a build without CUDA, or none visible)");
  if (gpus == 0) return c10::Device(c10::DeviceType::CPU);
  NodeSlot slot;
  slot.rank = local_rank;
  return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(gpu_index(slot, gpus)));
}

namespace {

// A cgroup limit file's number; 0 for "max", a missing file or an implausible value.
std::uint64_t cgroup_limit(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return 0;
  const std::uint64_t v = std::strtoull(text.c_str(), nullptr, 10);
  return v >= (1ull << 60) ? 0 : v;  // cgroup v1 writes "no limit" as a huge number
}

}  // namespace

std::uint64_t device_memory_bytes(c10::Device device, std::string* source) {
  const auto said = [&](const std::string& s) {
    if (source != nullptr) *source = s;
  };
  if (device.is_cuda()) {
#if MS_HAVE_CUDART
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, device.index() < 0 ? 0 : device.index()) == cudaSuccess) {
      said("GPU " + std::to_string(device.index() < 0 ? 0 : device.index()) + " total memory");
      return prop.totalGlobalMem;
    }
#endif
    fail("", "device", "cannot read the memory of GPU " + std::to_string(device.index()) + " (a build without the CUDA runtime)");
  }
  const std::uint64_t physical = static_cast<std::uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const std::uint64_t limit = cgroup_limit(path);
    if (limit > 0 && limit < physical) {
      said(std::string("cgroup limit (") + path + ")");
      return limit;
    }
  }
  said("physical memory");
  return physical;
}

}  // namespace ms::model
