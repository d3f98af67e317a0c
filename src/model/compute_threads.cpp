#include "mergesweep/model/compute_threads.hpp"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>

#include <cstdlib>
#include <string>

namespace ms::model {
namespace {

// A positive integer from the environment, or 0 when unset or not one.
int env_threads(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return end != v && *end == '\0' && n > 0 && n < 4096 ? static_cast<int>(n) : 0;
}

}  // namespace

int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  const int n = CPU_COUNT(&set);
  return n > 0 ? n : 1;
}

ThreadSplit default_thread_split(int cores, Workload workload) {
  const int n = cores > 0 ? cores : 1;
  ThreadSplit s;
  if (workload == Workload::Merge) {
    // Merges are ATen's own loops (fused kernels, trim rules, row blocks: at::parallel_for) and
    // memory-bound, so ATen gets every core (docs/model.md, "Threads", has the measurements).
    // BLAS gets one thread so that the SVD methods' GEMMs do not spin against ATen's threads.
    s.aten = n;
    s.blas = 1;
    return s;
  }
  // Measured on 2 cores (docs/model.md, "Threads"): GEMMs dominate evaluation and multi-threaded
  // BLAS runs them best; ATen's elementwise ops on top of it keep their own threads only when
  // they do not spin against BLAS. One thread of ATen plus every core for BLAS was fastest.
  s.aten = 1;
  s.blas = n;
  return s;
}

void apply_thread_split(const ThreadSplit& split) {
  at::set_num_threads(split.aten > 0 ? split.aten : 1);
  // OpenBLAS (Debian's libtorch links the system BLAS) exports openblas_set_num_threads; an MKL
  // build of libtorch (the PyPI wheel) follows at::set_num_threads itself.
  using SetFn = void (*)(int);
  if (auto* f = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    f(split.blas > 0 ? split.blas : 1);
}

ThreadSplit configure_compute_threads(Workload workload) {
  // Merges allocate and free tensor-sized buffers in a loop. glibc serves every block above 32 MB
  // with a fresh mmap, so each one page-faults in again (about 0.35 s per 64 MB here). Keeping
  // large blocks in the heap lets freed buffers be reused without faults.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  ThreadSplit s = default_thread_split(usable_cores(), workload);
  if (const int omp = env_threads("OMP_NUM_THREADS")) s.aten = omp;
  if (const int blas = env_threads("OPENBLAS_NUM_THREADS")) s.blas = blas;
  apply_thread_split(s);
  return s;
}

void release_free_memory() { malloc_trim(0); }

}  // namespace ms::model
