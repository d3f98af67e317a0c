#include "mergesweep/sweep/run.hpp"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "mergesweep/archive/archive.hpp"
#include "mergesweep/archive/fs_check.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/core/sha256.hpp"
#include "mergesweep/core/units.hpp"
#include "mergesweep/core/version.hpp"
#include "mergesweep/dist/mpi_comm.hpp"
#include "mergesweep/dist/nccl_comm.hpp"
#include "mergesweep/dist/signals.hpp"
#include "mergesweep/io/family_check.hpp"
#include "mergesweep/io/hub_cache.hpp"
#include "mergesweep/model/compute_threads.hpp"
#include "mergesweep/model/device.hpp"
#include "mergesweep/eval/task_pack.hpp"
#include "mergesweep/sweep/coordinator.hpp"
#include "mergesweep/sweep/eval_cost.hpp"
#include "mergesweep/sweep/eval_rows.hpp"
#include "mergesweep/sweep/failure.hpp"
#include "mergesweep/sweep/memory_plan.hpp"
#include "mergesweep/sweep/planner.hpp"
#include "mergesweep/sweep/result_codec.hpp"
#include "mergesweep/sweep/worker.hpp"

namespace ms::sweep {
namespace {

namespace fs = std::filesystem;

// ATen and BLAS threads per rank (model/compute_threads.hpp). Results of BLAS and LAPACK calls
// may depend on the thread count, so it is fixed by the spec, not by the rank count.
void set_threads(int n) { model::apply_thread_split({n, n}); }

std::vector<std::string> model_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && (name == "config.json" || name == "model.safetensors.index.json" ||
                                e.path().extension() == ".safetensors"))
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string host_name() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// The device this rank computes on (schedule.device, GPU local_rank % visible GPUs).
bool device_is_cuda(const SweepSpec& s) {
  return model::resolve_device(s.schedule.device, node_slot().rank, s.path, "schedule.device").is_cuda();
}

// Everything that changes a config's numbers besides its id: the eval set and its settings.
std::string plan_hash(const SweepSpec& s, const std::vector<archive::TaskRecord>& tasks) {
  nlohmann::json j;
  // A GPU's kernels round differently from the CPU's (reciprocal division, tree reductions): an
  // archive is resumed only on the device kind that began it. CPU plans keep their old hash.
  if (device_is_cuda(s)) j["device"] = "cuda";
  for (const auto& t : tasks) j["packs"].push_back({t.kind, t.name, t.sha256, t.items});
  j["layers"] = s.eval.layers;
  j["probe_seeds"] = s.eval.probe_seeds;
  j["dtype"] = s.eval.dtype;
  j["batch_tokens"] = s.eval.batch_tokens;
  j["max_length"] = s.eval.max_length;
  j["threads_per_rank"] = s.schedule.threads_per_rank;
  j["format"] = archive::kFormatVersion;
  const std::string text = j.dump();
  return sha256_hex(text.data(), text.size());
}

// sha256 of every file of the base and the checkpoints, spread over all ranks.
std::vector<archive::CheckpointRecord> hash_models(const SweepSpec& s, dist::Comm& world) {
  std::vector<archive::CheckpointRecord> recs;
  std::vector<std::string> models = {s.base};
  models.insert(models.end(), s.checkpoints.begin(), s.checkpoints.end());
  for (std::size_t m = 0; m < models.size(); ++m) {
    for (const auto& f : model_files(models[m])) {
      archive::CheckpointRecord r;
      r.model = static_cast<std::int32_t>(m);
      // A checkpoint by its short name (the spec's); a hub base as org/name@<commit>, the commit
      // next to each file's sha256 (a checkpoint's commit is in its path: .../snapshots/<commit>/).
      const io::HubSnapshot hub = io::hub_snapshot_of(models[m]);
      r.name = m > 0 ? s.checkpoint_names.at(m - 1)
                     : hub.repo.empty() ? fs::path(models[m]).filename().string() : hub.repo + "@" + hub.commit;
      r.path = f;
      r.bytes = fs::file_size(f);
      recs.push_back(r);
    }
  }
  std::vector<std::int64_t> packed(recs.size() * 4, 0);
  for (std::size_t i = 0; i < recs.size(); ++i) {
    if (static_cast<int>(i % static_cast<std::size_t>(world.size())) != world.rank()) continue;
    const std::string hex = sha256_file(recs[i].path);
    for (std::size_t q = 0; q < 4; ++q) packed[i * 4 + q] = static_cast<std::int64_t>(std::stoull(hex.substr(q * 16, 16), nullptr, 16));
  }
  world.allreduce_sum(packed.data(), packed.size());  // one nonzero per slot (wraps exactly)
  for (std::size_t i = 0; i < recs.size(); ++i) {
    char hex[65];
    for (std::size_t q = 0; q < 4; ++q)
      std::snprintf(hex + q * 16, 17, "%016llx", static_cast<unsigned long long>(packed[i * 4 + q]));
    recs[i].sha256 = hex;
  }
  return recs;
}

// Same verdict on every rank: rank r's error is printed by r; all ranks then stop.
struct Quiet : std::exception {};  // already reported: exit 1 without printing again

void agree_or_exit(dist::Comm& world, const std::string& error, int rank) {
  std::int64_t bad[2] = {error.empty() ? 0 : 1, (!error.empty() && rank == 0) ? 1 : 0};
  world.allreduce_sum(bad, 2);
  if (bad[0] == 0) return;
  if (!error.empty() && (rank == 0 || bad[1] == 0)) {
    std::fprintf(stderr, "mergesweep: error: %s%s\n", rank == 0 ? "" : ("rank " + std::to_string(rank) + ": ").c_str(),
                 error.c_str());
  }
  throw Quiet();
}

// The message of the exception being handled, for agree_or_exit (bad input, or out of memory
// while reading the residents: both end the run on every rank).
std::string current_error() {
  try {
    throw;
  } catch (const GroupFailure& e) {
    return e.what();  // names the phase, the rank and the kind already
  } catch (...) {
  }
  const FailureInfo f = describe_current_exception();
  return f.kind == "error" ? f.message : f.kind + ": " + f.message;
}

// What every rank holds for the run.
struct Session {
  SweepSpec spec;
  Plan plan;
  dist::Groups groups;
  std::unique_ptr<dist::Comm> gcomm;
  std::unique_ptr<Worker> worker;
  ~Session() {
    worker.reset();
    gcomm.reset();
    try {
      dist::free_groups(groups);
    } catch (const std::exception&) {  // destructor: finalizing MPI frees it anyway
    }
  }
};

// schedule.comm: auto = nccl when the device is cuda, else mpi. "" when this rank can build the
// chosen backend, else the reason (checked on every rank before the collective that makes it).
std::string group_backend(const SweepSpec& s, std::string* error) {
  const bool cuda = device_is_cuda(s);
  const std::string backend = s.schedule.comm == "auto" ? (cuda ? "nccl" : "mpi") : s.schedule.comm;
  if (backend == "nccl" && !dist::nccl_built())
    *error = s.path + ": schedule.comm: nccl, but this build has no NCCL backend (built without the CUDA toolkit); use mpi or auto";
  else if (backend == "nccl" && !cuda)
    *error = s.path + ": schedule.comm: nccl carries device buffers, but this rank computes on the CPU" +
             std::string(dist::cuda_device_visible() ? "" : " (no GPU is visible)") + "; use mpi or auto";
  else if (backend == "mpi" && cuda && s.schedule.group_size > 1)
    // The MPI backend hands its buffers to MPI as they are; a non-CUDA-aware MPI would read device
    // pointers as host memory. Refused rather than assumed.
    *error = s.path + ": schedule.comm: mpi with schedule.device cuda and a group of " +
             std::to_string(s.schedule.group_size) +
             " ranks would hand GPU memory to MPI, which this build does not stage through the host; use "
             "nccl (or auto), or group_size 1";
  return backend;
}

SweepSpec load_agreed(const RunOptions& opts, dist::Comm& world) {
  SweepSpec spec;
  std::string error;
  try {
    spec = load_spec(opts.spec_path);
    require_checkpoints_on_disk(spec, "a sweep");
    if (!opts.output.empty()) spec.output = opts.output;
    if (opts.group_size > 0) spec.schedule.group_size = opts.group_size;
    if (opts.threads_per_rank > 0) spec.schedule.threads_per_rank = opts.threads_per_rank;
    if (opts.progress_interval > 0) spec.schedule.progress_interval = opts.progress_interval;
  } catch (...) {
    error = current_error();
  }
  agree_or_exit(world, error, world.rank());
  return spec;
}

// Worker groups, their collective backend, resident shards, packs.
void join_group(Session& s, dist::Comm& world) {
  std::string error;
  std::string backend;
  try {
    s.groups = dist::split_groups(s.spec.schedule.group_size);
    backend = group_backend(s.spec, &error);
  } catch (...) {
    error = current_error();
  }
  agree_or_exit(world, error, world.rank());
  try {
    s.gcomm = dist::make_group_comm(s.groups, backend, s.spec.schedule.peer_timeout);
    s.worker = std::make_unique<Worker>(s.spec, *s.gcomm, s.groups.group);
  } catch (const dist::SetupTimeout& e) {
    // A peer never arrived: it would not arrive at the agreement below either. End the job for a
    // requeue, as the coordinator does with a silent group.
    std::fprintf(stderr, "mergesweep: error: rank %d: %s; ending the job (exit %d)\n", world.rank(), e.what(), dist::kExitDrained);
    std::fflush(stderr);
    dist::MpiSession::abort_job(dist::kExitDrained);
  } catch (...) {
    error = current_error();
  }
  agree_or_exit(world, error, world.rank());
}

struct Todo {
  std::unique_ptr<archive::Writer> writer;
  std::vector<std::size_t> todo;  // plan indices, slowest first
  std::size_t skipped = 0;
};

// Rank 0: the archive (resume) and the configs of this slice still to run.
Todo open_archive(const RunOptions& opts, const Session& s, const std::vector<archive::CheckpointRecord>& checkpoints,
                  int world_size) {
  Todo t;
  archive::Provenance prov;
  prov.spec_text = s.spec.text;
  prov.spec_hash = sha256_hex(s.spec.text.data(), s.spec.text.size());
  prov.plan_hash = plan_hash(s.spec, s.worker->task_records());
  prov.version = kVersion;
  prov.git_revision = kGitRevision;
  prov.host = host_name();
  prov.ranks = world_size;
  prov.group_size = s.spec.schedule.group_size;
  prov.start_time = utc_now();
  if (!s.spec.output.empty() && fs::path(s.spec.output).has_parent_path())
    fs::create_directories(fs::path(s.spec.output).parent_path());
  // Said at every start, as in --plan: a sweep submitted without a plan must not learn of it from a lost lock.
  if (const std::string w = archive::shared_fs_warning(s.spec.output); !w.empty())
    std::fprintf(stderr, "mergesweep: %s\n", w.c_str());
  t.writer = archive::Writer::open(s.spec.output, prov, checkpoints, s.worker->task_records());
  const auto& configs = s.plan.configs;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    if (static_cast<int>(i % static_cast<std::size_t>(opts.slice_count)) != opts.slice_index) continue;
    if (t.writer->done().count(configs[i].id)) ++t.skipped;
    else t.todo.push_back(i);
  }
  std::stable_sort(t.todo.begin(), t.todo.end(), [&](std::size_t a, std::size_t b) { return configs[a].cost > configs[b].cost; });
  return t;
}

// Rank 0: the summary line and the run's exit status.
std::int64_t summarize(const RunOptions& opts, const SweepSpec& spec, const RunStats& st) {
  if (!opts.quiet || st.stopped_by_signal || st.failed) {
    std::fprintf(stderr,
                 "mergesweep: summary: %zu configs planned, %zu run, %zu skipped (already in the archive), %zu failed, "
                 "%zu dropped, %zu not started; wall time %s; archive %s\n",
                 st.planned, st.run, st.skipped, st.failed, st.dropped, st.not_started, format_duration(st.wall_s).c_str(),
                 spec.output.c_str());
  }
  if (st.stopped_by_signal && (st.not_started + st.dropped) > 0) {
    const std::string why = !st.device_failure.empty() ? "stopped after a device failure (" + st.device_failure + ")"
                                                       : dist::describe_stop();
    std::fprintf(stderr, "mergesweep: %s; the archive is consistent; rerun the same command to resume (exit status %d)\n",
                 why.c_str(), dist::kExitDrained);
    return dist::kExitDrained;
  }
  return st.failed > 0 ? kExitError : kExitOk;
}

// What rank 0's allgathers moved per config, against the model's B·(g−1)/g (docs/sizing.md).
void print_gather_traffic(const Worker& w, int group_size) {
  const auto t = w.gather_traffic();
  if (group_size < 2 || t.gathers == 0) return;
  const double per = static_cast<double>(t.received) / static_cast<double>(t.gathers);
  const double model = static_cast<double>(t.model_bytes) * (group_size - 1) / group_size;
  std::fprintf(stderr, "mergesweep: traffic: rank 0 received %s per config by allgather (%llu gathers); "
                       "B*(g-1)/g = %s for the merged model (B = %s)\n",
               format_bytes(static_cast<std::uint64_t>(per)).c_str(), static_cast<unsigned long long>(t.gathers),
               format_bytes(static_cast<std::uint64_t>(model)).c_str(), format_bytes(t.model_bytes).c_str());
}

// Heartbeats often enough that a working group is never mistaken for a silent one.
double beat_interval(const Schedule& s) { return std::clamp(s.peer_timeout / 4, 0.05, 30.0); }

// Every rank: the work loop; rank 0 also coordinates. Returns the common exit status.
std::int64_t run_configs(const RunOptions& opts, Session& s, Todo& t, dist::Comm& world,
                         std::chrono::steady_clock::time_point wall0) {
  const int rank = world.rank();
  std::unique_ptr<Coordinator> coord;
  if (rank == 0) {
    if (!opts.quiet)
      std::fprintf(stderr, "mergesweep: sweep '%s': %zu configs planned, %zu already in %s, %zu to run on %d rank(s) in %d group(s)\n",
                   s.spec.name.c_str(), s.plan.configs.size(), t.skipped, s.spec.output.c_str(), t.todo.size(),
                   world.size(), s.groups.num_groups);
    coord = std::make_unique<Coordinator>(s.plan, t.todo, *t.writer, s.spec.schedule, s.groups.num_groups,
                                          s.groups.group_size, Progress::detect(opts.quiet), t.skipped);
    coord->start();
  }
  work_loop(coord.get(), *s.gcomm, s.groups.group_rank == 0, rank, beat_interval(s.spec.schedule),
            [&](std::int64_t idx, bool* dropped) { return s.worker->run(s.plan.configs[static_cast<std::size_t>(idx)], dropped); });
  std::int64_t status = kExitOk;
  if (rank == 0) {
    try {
      RunStats st = coord->finish();
      t.writer->close();
      st.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
      status = summarize(opts, s.spec, st);
      if (!opts.quiet) print_gather_traffic(*s.worker, s.groups.group_size);
    } catch (const std::exception& e) {  // an archive write failed: every rank still ends together
      std::fprintf(stderr, "mergesweep: error: %s\n", e.what());
      status = kExitError;
    }
  }
  world.host_broadcast(&status, sizeof status, 0);
  return status;
}

}  // namespace

int run_sweep(const RunOptions& opts, int* argc, char*** argv) {
  dist::install_drain_handlers();
  dist::MpiSession mpi(argc, argv);
  auto world = dist::make_world_comm();
  const auto wall0 = std::chrono::steady_clock::now();
  try {
    Session s;
    s.spec = load_agreed(opts, *world);
    set_threads(s.spec.schedule.threads_per_rank);
    s.plan = make_plan(s.spec);
    join_group(s, *world);
    const auto checkpoints = hash_models(s.spec, *world);
    Todo t;
    std::string error;
    if (world->rank() == 0) {
      try {
        t = open_archive(opts, s, checkpoints, mpi.world_size());
      } catch (...) {
        error = current_error();
      }
    }
    agree_or_exit(*world, error, world->rank());
    return static_cast<int>(run_configs(opts, s, t, *world, wall0));
  } catch (const Quiet&) {
    return kExitError;  // already reported by agree_or_exit
  } catch (const ms::Error&) {
    throw;
  } catch (...) {  // c10::Error, bad_alloc, ...: one error line like every other failure
    const FailureInfo f = describe_current_exception();
    throw ms::Error("", "sweep", f.kind + ": " + f.message);
  }
}

}  // namespace ms::sweep
