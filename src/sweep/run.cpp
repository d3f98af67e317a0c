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
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/sha256.hpp"
#include "mergesweep/core/version.hpp"
#include "mergesweep/dist/mpi_comm.hpp"
#include "mergesweep/dist/signals.hpp"
#include "mergesweep/model/device.hpp"
#include "mergesweep/sweep/coordinator.hpp"
#include "mergesweep/sweep/memory_plan.hpp"
#include "mergesweep/sweep/planner.hpp"
#include "mergesweep/sweep/result_codec.hpp"
#include "mergesweep/sweep/worker.hpp"

namespace ms::sweep {
namespace {

namespace fs = std::filesystem;

// ATen (OpenMP) and OpenBLAS (its own pthread pool) threads per rank. Results of BLAS and LAPACK
// calls may depend on the thread count, so it is fixed by the spec, not by the rank count.
void set_threads(int n) {
  at::set_num_threads(n);
  using SetFn = void (*)(int);
  if (auto* f = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}

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

// Everything that changes a config's numbers besides its id: the eval set and its settings.
std::string plan_hash(const SweepSpec& s, const std::vector<archive::TaskRecord>& tasks) {
  nlohmann::json j;
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
      r.name = fs::path(models[m]).filename().string();
      r.path = f;
      r.bytes = fs::file_size(f);
      recs.push_back(r);
    }
  }
  std::vector<std::int64_t> packed(recs.size() * 4, 0);
  for (std::size_t i = 0; i < recs.size(); ++i) {
    if (static_cast<int>(i % static_cast<std::size_t>(world.size())) != world.rank()) continue;
    const std::string hex = sha256_file(recs[i].path);
    for (int q = 0; q < 4; ++q) packed[i * 4 + q] = static_cast<std::int64_t>(std::stoull(hex.substr(q * 16, 16), nullptr, 16));
  }
  world.allreduce_sum(packed.data(), packed.size());  // one nonzero per slot (wraps exactly)
  for (std::size_t i = 0; i < recs.size(); ++i) {
    char hex[65];
    for (int q = 0; q < 4; ++q)
      std::snprintf(hex + q * 16, 17, "%016llx", static_cast<unsigned long long>(packed[i * 4 + q]));
    recs[i].sha256 = hex;
  }
  return recs;
}

// Same verdict on every rank: rank r's error is printed by r; all ranks then stop.
void agree_or_exit(dist::Comm& world, const std::string& error, int rank) {
  std::int64_t bad[2] = {error.empty() ? 0 : 1, (!error.empty() && rank == 0) ? 1 : 0};
  world.allreduce_sum(bad, 2);
  if (bad[0] == 0) return;
  if (!error.empty() && (rank == 0 || bad[1] == 0)) {
    std::fprintf(stderr, "mergesweep: error: %s%s\n", rank == 0 ? "" : ("rank " + std::to_string(rank) + ": ").c_str(),
                 error.c_str());
  }
  throw std::runtime_error("");  // caught below: exit 1 without printing again
}

struct Quiet : std::exception {};

}  // namespace

void work_loop(Coordinator* coord, dist::Comm& group, bool leader, int world_rank, const WorkFn& work) {
  std::vector<std::uint8_t> outgoing;  // a remote leader's finished result, sent with its next request
  std::int64_t prev_index = -1;
  ItemStatus prev_status = ItemStatus::None;
  for (;;) {
    std::int64_t idx = -1;
    if (leader) {
      if (world_rank == 0) {
        idx = coord->next_local();
      } else {
        std::vector<std::uint8_t> msg(16);
        const std::int64_t head[2] = {prev_index, static_cast<std::int64_t>(prev_status)};
        std::memcpy(msg.data(), head, 16);
        msg.insert(msg.end(), outgoing.begin(), outgoing.end());
        MPI_Send(msg.data(), static_cast<int>(msg.size()), MPI_BYTE, 0, kTagWork, MPI_COMM_WORLD);
        MPI_Recv(&idx, 1, MPI_INT64_T, 0, kTagAssign, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      }
    }
    group.broadcast(&idx, sizeof idx, 0);
    if (idx < 0) break;
    bool dropped = false;
    archive::ConfigResult result;
    std::string failure;
    try {
      result = work(idx, &dropped);
    } catch (const ms::Error& e) {
      failure = e.what();
    }
    const ItemStatus status = !failure.empty() ? ItemStatus::Failed : dropped ? ItemStatus::Dropped : ItemStatus::Done;
    if (!leader) continue;
    if (world_rank == 0) {
      coord->submit_local(idx, status, std::move(result), failure);
    } else {
      prev_index = idx;
      prev_status = status;
      outgoing = status == ItemStatus::Done ? encode_result(result)
                                            : std::vector<std::uint8_t>(failure.begin(), failure.end());
    }
  }
}

int print_plan(const RunOptions& opts) {
  const SweepSpec spec = load_spec(opts.spec_path);
  const Plan plan = make_plan(spec);
  std::printf("sweep '%s': %zu checkpoints, sizes", spec.name.c_str(), spec.checkpoints.size());
  for (int n : spec.sizes) std::printf(" %d", n);
  std::printf(", %d samples per size, seed %llu\n", spec.samples, static_cast<unsigned long long>(spec.seed));
  std::map<std::string, std::map<int, int>> counts;
  for (std::size_t i = plan.num_baselines; i < plan.configs.size(); ++i) {
    const auto& c = plan.configs[i];
    counts[c.method() + "(" + c.params() + ")"][c.n]++;
  }
  std::printf("  baselines: base + %zu single checkpoints\n", plan.num_baselines - 1);
  for (const auto& [m, by_n] : counts) {
    int total = 0;
    std::string sizes;
    for (const auto& [n, k] : by_n) {
      total += k;
      sizes += " n=" + std::to_string(n) + ":" + std::to_string(k);
    }
    std::printf("  %s: %d configs (%s )\n", m.c_str(), total, sizes.c_str());
  }
  std::size_t in_slice = 0;
  for (std::size_t i = 0; i < plan.configs.size(); ++i)
    if (static_cast<int>(i % static_cast<std::size_t>(opts.slice_count)) == opts.slice_index) ++in_slice;
  std::printf("total: %zu configs", plan.configs.size());
  if (opts.slice_count > 1) std::printf(" (slice %d/%d: %zu)", opts.slice_index, opts.slice_count, in_slice);
  const std::string out = opts.output.empty() ? spec.output : opts.output;
  if (fs::exists(out)) {
    std::size_t done = 0;
    std::set<std::uint64_t> ids;
    for (const auto& c : archive::read(out).configs) ids.insert(c.config.id);
    for (const auto& c : plan.configs) done += ids.count(c.id);
    std::printf(", %zu already in %s", done, out.c_str());
  }
  std::printf("\n");
  // Memory per rank at the group size the run would use, on the device it would use.
  const int g = opts.group_size > 0 ? opts.group_size : spec.schedule.group_size;
  const c10::Device device = model::resolve_device(spec.schedule.device, 0, spec.path, "schedule.device");
  std::printf("%s", describe_memory(plan_memory(spec, read_model_shape(spec.base), g, device, model::local_size_from_env())).c_str());
  if (opts.list) {
    for (std::size_t i = 0; i < plan.configs.size(); ++i) {
      const auto& c = plan.configs[i];
      std::string m;
      for (int k : c.members) m += (m.empty() ? "" : ",") + std::to_string(k);
      std::printf("%016llx %-6s %-18s %-40s n=%-3d sample=%-3d {%s}\n", static_cast<unsigned long long>(c.id),
                  kind_name(c.kind).c_str(), c.kind == ConfigKind::Merge ? c.method().c_str() : "-",
                  c.kind == ConfigKind::Merge ? c.params().c_str() : "-", c.n, c.sample, m.c_str());
    }
  }
  return kExitOk;
}

int run_sweep(const RunOptions& opts, int* argc, char*** argv) {
  dist::install_drain_handlers();
  dist::MpiSession mpi(argc, argv);
  const int rank = mpi.world_rank();
  auto world = dist::make_mpi_comm(MPI_COMM_WORLD);
  const auto wall0 = std::chrono::steady_clock::now();
  try {
    // 1. Spec and models, checked on every rank (files may be node-local).
    SweepSpec spec;
    std::string error;
    try {
      spec = load_spec(opts.spec_path);
      if (!opts.output.empty()) spec.output = opts.output;
      if (opts.group_size > 0) spec.schedule.group_size = opts.group_size;
      if (opts.threads_per_rank > 0) spec.schedule.threads_per_rank = opts.threads_per_rank;
      if (opts.progress_interval > 0) spec.schedule.progress_interval = opts.progress_interval;
    } catch (const ms::Error& e) {
      error = e.what();
    }
    agree_or_exit(*world, error, rank);
    set_threads(spec.schedule.threads_per_rank);
    const Plan plan = make_plan(spec);

    // 2. Worker groups, resident shards, packs.
    dist::Groups groups;
    std::unique_ptr<dist::Comm> gcomm;
    std::unique_ptr<Worker> worker;
    try {
      groups = dist::split_groups(spec.schedule.group_size);
      gcomm = dist::make_mpi_comm(groups.comm);
      worker = std::make_unique<Worker>(spec, *gcomm, groups.group);
    } catch (const ms::Error& e) {
      error = e.what();
    }
    agree_or_exit(*world, error, rank);
    const auto checkpoints = hash_models(spec, *world);

    // 3. Rank 0: archive (resume) and the list of configs still to run, slowest first.
    std::unique_ptr<archive::Writer> writer;
    std::vector<std::size_t> todo;
    std::size_t skipped = 0;
    if (rank == 0) {
      try {
        archive::Provenance prov;
        prov.spec_text = spec.text;
        prov.spec_hash = sha256_hex(spec.text.data(), spec.text.size());
        prov.plan_hash = plan_hash(spec, worker->task_records());
        prov.version = kVersion;
        prov.git_revision = kGitRevision;
        prov.host = host_name();
        prov.ranks = mpi.world_size();
        prov.group_size = spec.schedule.group_size;
        prov.start_time = utc_now();
        if (!spec.output.empty() && fs::path(spec.output).has_parent_path())
          fs::create_directories(fs::path(spec.output).parent_path());
        writer = archive::Writer::open(spec.output, prov, checkpoints, worker->task_records());
        for (std::size_t i = 0; i < plan.configs.size(); ++i) {
          if (static_cast<int>(i % static_cast<std::size_t>(opts.slice_count)) != opts.slice_index) continue;
          if (writer->done().count(plan.configs[i].id)) ++skipped;
          else todo.push_back(i);
        }
        std::stable_sort(todo.begin(), todo.end(),
                         [&](std::size_t a, std::size_t b) { return plan.configs[a].cost > plan.configs[b].cost; });
      } catch (const ms::Error& e) {
        error = e.what();
      }
    }
    agree_or_exit(*world, error, rank);

    // 4. Work loop: group leaders ask rank 0 for the next config; each group runs it together.
    std::unique_ptr<Coordinator> coord;
    const auto mode = Progress::detect(opts.quiet);
    if (rank == 0) {
      if (!opts.quiet)
        std::fprintf(stderr, "mergesweep: sweep '%s': %zu configs planned, %zu already in %s, %zu to run on %d rank(s) in %d group(s)\n",
                     spec.name.c_str(), plan.configs.size(), skipped, spec.output.c_str(), todo.size(), mpi.world_size(),
                     groups.num_groups);
      coord = std::make_unique<Coordinator>(plan, todo, *writer, spec.schedule, groups.num_groups, mode, skipped);
      coord->start();
    }
    work_loop(coord.get(), *gcomm, groups.group_rank == 0, rank,
              [&](std::int64_t idx, bool* dropped) { return worker->run(plan.configs[static_cast<std::size_t>(idx)], dropped); });

    // 5. Summary and a common exit status.
    std::int64_t status = kExitOk;
    if (rank == 0) {
      RunStats st = coord->finish();
      writer->close();
      st.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
      if (!opts.quiet || st.stopped_by_signal || st.failed) {
        std::fprintf(stderr,
                     "mergesweep: summary: %zu configs planned, %zu run, %zu skipped (already in the archive), %zu failed, "
                     "%zu dropped, %zu not started; wall time %s; archive %s\n",
                     st.planned, st.run, st.skipped, st.failed, st.dropped, st.not_started,
                     format_duration(st.wall_s).c_str(), spec.output.c_str());
      }
      if (st.stopped_by_signal && (st.not_started + st.dropped) > 0) {
        std::fprintf(stderr, "mergesweep: stopped by signal %d; the archive is consistent; rerun the same command to resume "
                             "(exit status %d)\n", dist::last_signal(), dist::kExitDrained);
        status = dist::kExitDrained;
      } else if (st.failed > 0) {
        status = kExitError;
      }
    }
    world->broadcast(&status, sizeof status, 0);
    dist::free_groups(groups);
    return static_cast<int>(status);
  } catch (const ms::Error&) {
    throw;
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).empty()) return kExitError;  // already reported by agree_or_exit
    throw;
  }
}

}  // namespace ms::sweep
