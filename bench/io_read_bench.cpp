// Reading throughput of the safetensors reader: open a ~1 GB file, take a zero-copy view of every
// tensor and reduce over it (warm page cache), against a plain memcpy of the same number of bytes
// in the same run. Goal: ratio >= 0.8.
//
// usage: bench_io_read [--gb 1.0] [--dir /tmp] [--reps 5]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/safetensors_file.hpp"
#include "mergesweep/io/safetensors_writer.hpp"

using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  double gb = 1.0;
  int reps = 5;
  std::string dir = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--gb")) gb = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
  }
  const std::string path = dir + "/mergesweep-bench-io.safetensors";
  // Debian's libtorch starts with one thread; use every core unless MS_THREADS says otherwise.
  at::set_num_threads(std::getenv("MS_THREADS") ? std::atoi(std::getenv("MS_THREADS"))
                                                : static_cast<int>(std::thread::hardware_concurrency()));

  // 1. Generate: 16 MB float32 tensors plus a few bfloat16 ones, like a checkpoint shard.
  const std::int64_t per = 4 << 20;  // elements per f32 tensor
  const int count = std::max(1, static_cast<int>(gb * 1e9 / (per * 4)));
  std::vector<ms::io::TensorSpec> specs;
  for (int i = 0; i < count; ++i) {
    specs.push_back({"layers." + std::to_string(i) + ".weight", i % 8 == 7 ? ms::io::DType::BF16 : ms::io::DType::F32,
                     {per / 1024, 1024}});
  }
  {
    ms::io::SafetensorsWriter w(path, specs);
    for (const auto& s : specs) {
      at::Tensor t = at::full({per / 1024, 1024}, 0.5, s.dtype == ms::io::DType::BF16 ? at::kBFloat16 : at::kFloat);
      w.write(s.name, t.data_ptr(), s.nbytes());
    }
    w.commit();
  }
  std::uint64_t total = 0;
  for (const auto& s : specs) total += s.nbytes();

  // 2. Warm the page cache.
  {
    auto f = ms::io::SafetensorsFile::open(path);
    volatile std::uint8_t sink = 0;
    for (const auto& e : f->header().tensors)
      for (std::uint64_t o = 0; o < e.nbytes(); o += 4096) sink = sink + f->data(e)[o];
  }

  // 3. Baseline: memcpy of the same number of bytes, buffers pre-faulted.
  std::vector<double> t_memcpy, t_read;
  {
    std::vector<std::uint8_t> src(total, 1), dst(total, 0);
    for (int r = 0; r < reps; ++r) {
      const auto t0 = Clock::now();
      std::memcpy(dst.data(), src.data(), total);
      t_memcpy.push_back(seconds_since(t0));
    }
  }

  // 4. Read: open (mmap + header validation), view every tensor, reduce it.
  double checksum = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    auto f = ms::io::SafetensorsFile::open(path);
    f->advise_sequential();
    double acc = 0;
    for (const auto& e : f->header().tensors) acc += f->tensor(e).sum(at::kFloat).item<float>();
    t_read.push_back(seconds_since(t0));
    checksum = acc;
  }
  std::remove(path.c_str());

  const auto total_bytes = static_cast<double>(total);
  const double gbps_memcpy = total_bytes / median(t_memcpy) / 1e9;
  const double gbps_read = total_bytes / median(t_read) / 1e9;
  std::printf("bench_io_read: %d tensors, %.3f GB, %d reps (medians), %d ATen threads\n", count, total_bytes / 1e9, reps,
              at::get_num_threads());
  std::printf("  memcpy baseline          %7.2f GB/s\n", gbps_memcpy);
  std::printf("  mmap + view + reduce     %7.2f GB/s   ratio %.2f (goal >= 0.80)   checksum %.1f\n", gbps_read,
              gbps_read / gbps_memcpy, checksum);
  return 0;
}
