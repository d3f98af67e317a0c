// The one owner of compute threads. A process computes with two thread pools that do not know
// each other: ATen's intra-op pool (OpenMP: elementwise ops, reductions, at::parallel_for) and the
// BLAS library's own pool (OpenBLAS's pthreads: every GEMM, LAPACK). Left alone they multiply: each
// ATen thread's GEMM asks BLAS for all cores, and OpenMP threads spin-wait on the cores BLAS
// needs, which made `mergesweep eval` 3-4x slower on 2 cores. Every entry point (each CLI verb,
// each sweep rank, the benchmarks) sets both pools here and nowhere else. docs/model.md
// ("Threads") has the measurements behind the default split.
#pragma once

namespace ms::model {

struct ThreadSplit {
  int aten = 1;  // ATen intra-op (OpenMP) threads
  int blas = 1;  // BLAS threads
};

// What an entry point mostly does: the best split differs (docs/model.md, "Threads").
enum class Workload {
  Evaluate,  // GEMM-bound forward passes: BLAS gets the cores
  Merge,     // memory-bound elementwise kernels (at::parallel_for): ATen gets the cores
};

// Cores this process may run on (its affinity mask: MPI launchers and SLURM bind ranks).
int usable_cores();

// The split for `cores` cores: see compute_threads.cpp for the measured choice.
ThreadSplit default_thread_split(int cores, Workload workload = Workload::Evaluate);

// Sets both pools.
void apply_thread_split(const ThreadSplit& split);

// Entry-point set-up: the default split for this process's cores, each pool overridden by the
// user's OMP_NUM_THREADS / OPENBLAS_NUM_THREADS when set, plus allocator settings for
// tensor-sized buffers. Returns the split in force.
ThreadSplit configure_compute_threads(Workload workload = Workload::Evaluate);

// Gives the heap's free pages back to the system. configure_compute_threads() keeps large blocks
// in the heap (no mmap per tensor-sized buffer); tensors of many sizes then leave holes that the
// process keeps: a sweep's resident set grew by a third to a half above its live memory. Called
// after each config, it keeps the resident set at what is live (a few ms per call).
void release_free_memory();

}  // namespace ms::model
