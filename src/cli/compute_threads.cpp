// Intra-op threads for ATen. Debian's libtorch starts with one OpenMP thread whatever the core
// count (omp_get_max_threads() == 1 here), which halves elementwise merges and matmuls on 2 cores.
// Default: OMP_NUM_THREADS when set, else every core this process may run on (MPI launchers
// bind ranks to cores, so a rank gets its share).
#include <ATen/Parallel.h>
#include <malloc.h>
#include <sched.h>

#include <cstdlib>

#include "mergesweep/cli/verbs.hpp"

namespace ms::cli {

void configure_compute_threads() {
  // Merges allocate and free tensor-sized buffers in a loop. glibc serves every block above 32 MB
  // with a fresh mmap, so each one page-faults in again (about 0.35 s per 64 MB here). Keeping
  // large blocks in the heap lets freed buffers be reused without faults.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (std::getenv("OMP_NUM_THREADS") != nullptr) return;  // the user's choice, already applied
  cpu_set_t set;
  CPU_ZERO(&set);
  int n = 1;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  at::set_num_threads(n > 0 ? n : 1);
}

}  // namespace ms::cli
