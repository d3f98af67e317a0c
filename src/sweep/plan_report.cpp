// `sweep --plan`: the plan's configs, the family, the memory per rank and the evaluation's cost,
// as text for a reader or (--json) as one JSON document for tools: analysis/sizing.py reads the
// memory terms from it instead of stating the memory model again.
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "mergesweep/archive/archive.hpp"
#include "mergesweep/archive/fs_check.hpp"
#include "mergesweep/core/exit_codes.hpp"
#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/io/family_check.hpp"
#include "mergesweep/model/device.hpp"
#include "mergesweep/sweep/eval_cost.hpp"
#include "mergesweep/sweep/memory_plan.hpp"
#include "mergesweep/sweep/planner.hpp"
#include "mergesweep/sweep/run.hpp"

namespace ms::sweep {
namespace {

namespace fs = std::filesystem;

// The device the run would use. A GPU plan made where no GPU is visible (a login node) is allowed
// when schedule.memory_per_rank gives the limit, which otherwise comes from the device itself.
c10::Device plan_device(const SweepSpec& spec) {
  if (spec.schedule.device == "cuda" && model::visible_cuda_devices() == 0 && spec.schedule.memory_per_rank > 0)
    return c10::Device(c10::DeviceType::CUDA, 0);
  return model::resolve_device(spec.schedule.device, 0, spec.path, "schedule.device");
}

// Merge configs per method (with its parameters) and subset size.
std::map<std::string, std::map<int, int>> configs_by_method(const Plan& plan) {
  std::map<std::string, std::map<int, int>> counts;
  for (std::size_t i = plan.num_baselines; i < plan.configs.size(); ++i) {
    const auto& c = plan.configs[i];
    counts[c.method() + "(" + c.params() + ")"][c.n]++;
  }
  return counts;
}

// Configs of the plan already committed to the archive at `out` (0 when there is none).
std::size_t already_archived(const Plan& plan, const std::string& out) {
  if (!fs::exists(out)) return 0;
  std::set<std::uint64_t> ids;
  for (const auto& c : archive::read(out).configs) ids.insert(c.config.id);
  std::size_t done = 0;
  for (const auto& c : plan.configs) done += ids.count(c.id);
  return done;
}

nlohmann::ordered_json memory_json(const MemoryPlan& m) {
  nlohmann::ordered_json j;
  j["device"] = m.cuda ? "cuda" : "cpu";
  j["group_size"] = m.group_size;
  j["limit"] = m.limit;
  j["limit_source"] = m.limit_source;
  j["peak"] = m.peak();
  j["fits"] = m.fits();
  j["smallest_fitting_group"] = m.smallest_fitting_group;
  for (const RankMemory& r : m.ranks)
    j["ranks"].push_back({{"resident", r.resident}, {"workspace", r.workspace}, {"merged", r.merged},
                          {"activations", r.activations}, {"runtime", r.runtime}, {"total", r.total()}});
  return j;
}

// --json: the same facts as the text, in bytes and counts.
void print_plan_json(const SweepSpec& spec, const Plan& plan, const ModelShape& shape, const MemoryPlan& memory,
                     const std::string& out) {
  nlohmann::ordered_json j;
  j["name"] = spec.name;
  std::int64_t parameters = 0;
  for (auto n : shape.numel) parameters += n;
  j["parameters"] = parameters;
  j["checkpoints"] = spec.checkpoints.size();
  j["shape_only"] = spec.shape_only;
  j["configs"] = plan.configs.size();
  j["baselines"] = plan.num_baselines;
  for (const auto& [m, by_n] : configs_by_method(plan)) {
    nlohmann::ordered_json sizes;
    int total = 0;
    for (const auto& [n, k] : by_n) sizes[std::to_string(n)] = k, total += k;
    j["methods"].push_back({{"method", m}, {"configs", total}, {"by_size", sizes}});
  }
  j["already_archived"] = already_archived(plan, out);
  j["memory"] = memory_json(memory);
  if (!spec.shape_only) {
    const EvalCost cost = estimate_eval_cost(read_eval_packs(spec));
    j["eval_forwards_per_config"] = cost.forwards;
  }
  std::printf("%s\n", j.dump(2).c_str());
}

void print_config_list(const SweepSpec& spec, const Plan& plan) {
  std::printf("checkpoints (number name):");
  for (std::size_t k = 0; k < spec.checkpoints.size(); ++k) std::printf(" %zu %s", k + 1, spec.checkpoint_names[k].c_str());
  std::printf("\n");
  for (const auto& c : plan.configs) {
    std::string m;
    for (int k : c.members) m += (m.empty() ? "" : ",") + spec.checkpoint_names.at(static_cast<std::size_t>(k - 1));
    std::printf("%016llx %-6s %-18s %-40s n=%-3d sample=%-3d {%s}\n", static_cast<unsigned long long>(c.id),
                kind_name(c.kind).c_str(), c.kind == ConfigKind::Merge ? c.method().c_str() : "-",
                c.kind == ConfigKind::Merge ? c.params().c_str() : "-", c.n, c.sample, m.c_str());
  }
}

void print_plan_text(const RunOptions& opts, const SweepSpec& spec, const Plan& plan, const MemoryPlan& memory,
                     const std::string& out) {
  std::printf("sweep '%s': %zu checkpoints, sizes", spec.name.c_str(), spec.checkpoints.size());
  for (int n : spec.sizes) std::printf(" %d", n);
  std::printf(", %d samples per size, seed %llu\n", spec.samples, static_cast<unsigned long long>(spec.seed));
  if (spec.shape_only)
    std::printf("shape-only: %zu checkpoints like %s (its config.json's sizes and torch_dtype), not on disk\n",
                spec.checkpoints.size(), spec.base.c_str());
  else
    std::printf("%s", io::describe_family(io::check_family(spec.base, spec.checkpoints, {}, spec.vocab_choice())).c_str());
  std::printf("  baselines: base + %zu single checkpoints\n", plan.num_baselines - 1);
  for (const auto& [m, by_n] : configs_by_method(plan)) {
    int total = 0;
    std::string sizes;
    for (const auto& [n, k] : by_n) total += k, sizes += " n=" + std::to_string(n) + ":" + std::to_string(k);
    std::printf("  %s: %d configs (%s )\n", m.c_str(), total, sizes.c_str());
  }
  std::size_t in_slice = 0;
  for (std::size_t i = 0; i < plan.configs.size(); ++i)
    if (static_cast<int>(i % static_cast<std::size_t>(opts.slice_count)) == opts.slice_index) ++in_slice;
  std::printf("total: %zu configs", plan.configs.size());
  if (opts.slice_count > 1) std::printf(" (slice %d/%d: %zu)", opts.slice_index, opts.slice_count, in_slice);
  if (fs::exists(out)) std::printf(", %zu already in %s", already_archived(plan, out), out.c_str());
  std::printf("\n");
  std::printf("%s", describe_memory(memory).c_str());
  if (!spec.shape_only)
    std::printf("%s", describe_eval_cost(estimate_eval_cost(read_eval_packs(spec)), plan.configs.size()).c_str());
  if (opts.list) print_config_list(spec, plan);
}

}  // namespace

int print_plan(const RunOptions& opts) {
  const SweepSpec spec = load_spec(opts.spec_path);
  const Plan plan = make_plan(spec);
  const std::string out = opts.output.empty() ? spec.output : opts.output;
  // The archive's single-writer lock and SWMR reads need what local disks give (docs/formats.md).
  if (const std::string w = archive::shared_fs_warning(out); !w.empty()) std::fprintf(stderr, "mergesweep: %s\n", w.c_str());
  // Memory per rank at the group size the run would use, on the device it would use.
  const int g = opts.group_size > 0 ? opts.group_size : spec.schedule.group_size;
  const ModelShape shape = read_model_shape(spec);
  const MemoryPlan memory = plan_memory(spec, shape, g, plan_device(spec), node_slot().size);
  if (opts.json) print_plan_json(spec, plan, shape, memory, out);
  else print_plan_text(opts, spec, plan, memory, out);
  return kExitOk;
}

}  // namespace ms::sweep
