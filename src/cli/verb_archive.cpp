// mergesweep archive info|verify|export|merge|top|model: look into, check, flatten and combine
// sweep archives (format in docs/formats.md, "Sweep archive"), rank their configs and rebuild a
// config's merged model (docs/archive.md).
#include <boost/program_options.hpp>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>

#include "mergesweep/archive/rebuild.hpp"
#include "mergesweep/archive/tools.hpp"
#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/model/device.hpp"
#include "options.hpp"

namespace po = boost::program_options;

namespace ms::cli {
namespace {

const char* const kOverview =
    "usage: mergesweep archive <command> [options]   (mergesweep archive <command> --help)\n\n"
    "commands:\n"
    "  info ARCHIVE                  provenance, rows per table, configs per method and size, configs\n"
    "                                lacking scores, writer state (also: summary ARCHIVE)\n"
    "  verify ARCHIVE                structure and consistency checks; exit 1 listing the problems\n"
    "  export ARCHIVE --out DIR      tidy CSV (or Parquet) tables for pandas, R, spreadsheets\n"
    "  merge A B... --out OUT        combine archives of one plan, each config once\n"
    "  top ARCHIVE --task T          the best configs on a task, with gains over the base\n"
    "  model ARCHIVE CONFIG_ID OUT   rebuild a config's merged model (HF folder, model card;\n"
    "                                --mergekit FILE: the mergekit YAML of the same merge)\n\n"
    "Archives can be read while a sweep writes them (HDF5 SWMR); only committed rows are shown.\n"
    "Format: docs/formats.md, section \"Sweep archive\".\n";

std::string time_text(double unix_s) {
  if (unix_s <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_s);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return b;
}

// Generate_until tasks: configs with generations and those still lacking scores.
void print_generation_status(const std::string& path, const archive::Summary& s) {
  if (s.generations.empty()) return;
  std::uint64_t unscored = 0;
  std::printf("generations (generate_until tasks): configs, of which lack scores\n");
  for (const auto& [task, st] : s.generations) {
    std::printf("  %-18s %6llu  %llu unscored\n", task.c_str(), static_cast<unsigned long long>(st.configs),
                static_cast<unsigned long long>(st.unscored));
    unscored += st.unscored;
  }
  if (unscored > 0)
    std::printf("unscored: %llu (config, task) pairs have generations without /results rows; score them with: %s %s\n",
                static_cast<unsigned long long>(unscored), archive::kScoreCommand, path.c_str());
}

int run_info(int argc, char** argv) {
  std::string path;
  po::options_description opts(
      "usage: mergesweep archive info ARCHIVE   (also: mergesweep archive summary ARCHIVE)\n\n"
      "Prints the provenance (root attributes), the committed rows of every table, the configs per\n"
      "method and subset size, the writer sessions (/specs), for generate_until tasks the configs\n"
      "whose generations lack scores (and the command that scores them), the failed attempts\n"
      "(/failures), and whether a writer holds the archive now. Safe while a sweep writes the file.\n\noptions");
  opts.add_options()("help,h", "show this help")("spec", "also print the spec text");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, {{"archive", 1, po::value(&path), "expected ARCHIVE"}}, vm)) return kExitOk;
  const auto s = archive::summarize(path);
  auto attr = [&](const char* k) {
    const auto it = s.attributes.find(k);
    return it == s.attributes.end() ? std::string("-") : it->second;
  };
  std::printf("archive: %s\n", path.c_str());
  std::printf("format_version: %s, written by mergesweep %s (%s)\n", attr("format_version").c_str(),
              attr("mergesweep_version").c_str(), attr("git_revision").c_str());
  std::printf("created: %s on %s, %s ranks, group size %s\n", attr("start_time").c_str(), attr("host").c_str(),
              attr("ranks").c_str(), attr("group_size").c_str());
  std::printf("plan_hash: %s\nspec_hash: %s\n", attr("plan_hash").c_str(), attr("spec_hash").c_str());
  // Models, not files: the base and each checkpoint once, by the name results show them by.
  const std::size_t checkpoints = s.models.size() - (s.models.count(0) ? 1 : 0);
  std::printf("models: the base (%s) and %zu checkpoints, in %llu files\n",
              s.models.count(0) ? s.models.at(0).c_str() : "-", checkpoints, static_cast<unsigned long long>(s.model_files));
  std::string names;
  for (const auto& [k, name] : s.models) {
    if (k == 0) continue;
    const std::string item = std::to_string(k) + " " + name;
    if (!names.empty() && names.size() + item.size() > 96) {
      std::printf("  %s\n", names.c_str());
      names.clear();
    }
    names += (names.empty() ? "" : ", ") + item;
  }
  if (!names.empty()) std::printf("  %s\n", names.c_str());
  std::printf("sessions: %zu\n", s.sessions.size());
  for (const auto& [t, h] : s.sessions) std::printf("  %s  spec %s\n", t.c_str(), h.substr(0, 16).c_str());
  std::printf("commits: %lld, last at %s\n", static_cast<long long>(s.commits), time_text(s.last_commit_time).c_str());
  std::printf("rows (committed):\n");
  for (const auto& [t, n] : s.rows) {
    const auto stored = s.stored.at(t);
    if (stored > n)
      std::printf("  %-12s %llu (+%llu uncommitted)\n", t.c_str(), static_cast<unsigned long long>(n),
                  static_cast<unsigned long long>(stored - n));
    else
      std::printf("  %-12s %llu\n", t.c_str(), static_cast<unsigned long long>(n));
  }
  std::printf("configs by method and subset size n:\n");
  for (const auto& [m, by] : s.configs_by_method_size) {
    std::string line;
    std::uint64_t total = 0;
    for (const auto& [n, k] : by) {
      line += " n=" + std::to_string(n) + ":" + std::to_string(k);
      total += k;
    }
    std::printf("  %-18s %6llu  %s\n", m.c_str(), static_cast<unsigned long long>(total), line.c_str());
  }
  print_generation_status(path, s);
  if (s.failures > 0)
    std::printf("failures: %llu failed attempts recorded; %llu of those configs are still not done (the same sweep "
                "command retries them; messages: mergesweep archive export)\n",
                static_cast<unsigned long long>(s.failures), static_cast<unsigned long long>(s.failed_not_done));
  if (s.writer_pid)
    std::printf("writer: active (pid %ld holds %s.lock)\n", s.writer_pid, path.c_str());
  else if (s.open_flag)
    std::printf("writer: none; the file was not closed cleanly (writer killed): rows after the last commit "
                "are ignored and dropped when the sweep resumes\n");
  else
    std::printf("writer: none (closed cleanly)\n");
  if (vm.count("spec")) std::printf("spec text:\n%s\n", attr("spec_text").c_str());
  return kExitOk;
}

int run_verify(int argc, char** argv) {
  std::string path;
  po::options_description opts(
      "usage: mergesweep archive verify ARCHIVE\n\n"
      "Checks that ARCHIVE is a readable mergesweep archive of a supported format version: every\n"
      "group and column present, a complete last commit whose row counts the datasets hold, commit\n"
      "counts never decreasing, no duplicate config ids, members consistent with n and the\n"
      "checkpoints, every result/model_stats/probe/timing row referencing a committed config, one\n"
      "timing row per config, spec_hash = sha256(spec_text). Exit 0 if sound, 1 with the list of\n"
      "problems otherwise.\n\noptions");
  opts.add_options()("help,h", "show this help");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, {{"archive", 1, po::value(&path), "expected ARCHIVE"}}, vm)) return kExitOk;
  const auto problems = archive::verify(path);
  if (problems.empty()) {
    std::printf("%s: ok\n", path.c_str());
    return kExitOk;
  }
  std::string all;
  for (const auto& p : problems) all += "\n  " + p;
  fail(path, "verify", std::to_string(problems.size()) + " problem(s):" + all);
}

int run_export(int argc, char** argv) {
  std::string path, out, format = "csv";
  po::options_description opts(
      "usage: mergesweep archive export ARCHIVE --out DIR [--format csv|parquet]\n\n"
      "Writes the committed rows as tidy tables in DIR (created if needed): results (one row per\n"
      "config, task and metric), configs, model_stats, probes, timings, generations (one row per\n"
      "config, task and item; text decoded, exact bytes in text_hex), failures, items, item_docs,\n"
      "fingerprints (each per-config table starts with the config columns\n"
      "config_id,kind,method,params,n,sample,members,member_names), checkpoints and tasks. Parquet goes through Python with pandas and pyarrow (python3, or $MS_PYTHON).\n\noptions");
  opts.add_options()("help,h", "show this help")("out,o", po::value(&out)->required(), "output folder")(
      "format", po::value(&format)->default_value(format), "csv or parquet");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, {{"archive", 1, po::value(&path), "expected ARCHIVE"}}, vm)) return kExitOk;
  const auto files = archive::export_tables(path, out, format);
  for (const auto& f : files) std::printf("%s\n", f.c_str());
  return kExitOk;
}

int run_merge_archives(int argc, char** argv) {
  std::vector<std::string> inputs;
  std::string out;
  po::options_description opts(
      "usage: mergesweep archive merge A B... --out OUT\n\n"
      "Combines archives of the same plan (same plan_hash and checkpoint hashes, e.g. the parts of\n"
      "a sweep run as separate jobs) into the new archive OUT, each config once (the first archive\n"
      "listed wins). Archives of different plans are refused. OUT must not exist; it is written\n"
      "under a temporary name and renamed when complete.\n\noptions");
  opts.add_options()("help,h", "show this help")("out,o", po::value(&out)->required(), "the new archive");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts,
                          {{"inputs", -1, po::value(&inputs)->multitoken(), "expected input archives A B..."}}, vm))
    return kExitOk;
  const auto rep = archive::merge_archives(inputs, out);
  std::printf("%s: %llu configs (%llu duplicates skipped)\n", out.c_str(), static_cast<unsigned long long>(rep.configs),
              static_cast<unsigned long long>(rep.duplicates));
  return kExitOk;
}


int run_top(int argc, char** argv) {
  std::string path;
  archive::TopQuery q;
  po::options_description opts(
      "usage: mergesweep archive top ARCHIVE --task T [--metric M] [--n K] [--method M] [--size N]\n\n"
      "Lists the K best merge configs on task T, best first, one per line:\n"
      "  CONFIG_ID METHOD n=N METRIC=VALUE +-STDERR gain=GAIN members=NAMES params=PARAMS\n"
      "GAIN is the config's value minus the base's (the base's minus the config's for perplexities\n"
      "and bits per byte, where lower is better): positive is better. The config id comes first, so\n"
      "a pipeline can rebuild the winner:\n"
      "  mergesweep archive top A.h5 --task arith --n 1 | cut -d' ' -f1 | xargs -I{} mergesweep archive model A.h5 {} best/\n"
      "The line before the configs, on stderr, names the metric and the base's value.\n\noptions");
  opts.add_options()("help,h", "show this help")("task", po::value(&q.task)->required(), "the task (as in /results)")(
      "metric", po::value(&q.metric), "the metric (default: acc when the task has it, else its first)")(
      "n", po::value(&q.count)->default_value(q.count), "how many configs to list")(
      "method", po::value(&q.method), "only this method (none: the single checkpoints)")(
      "size", po::value(&q.size)->default_value(0), "only subsets of this size (0: any)");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, {{"archive", 1, po::value(&path), "expected ARCHIVE"}}, vm)) return kExitOk;
  const auto top = archive::top_configs(path, q);
  if (top.has_base)
    std::fprintf(stderr, "# %s %s: base %.4f; %zu configs listed\n", q.task.c_str(), top.metric.c_str(), top.base_value,
                 top.rows.size());
  else
    std::fprintf(stderr, "# %s %s: the base is not scored yet (gain=-)\n", q.task.c_str(), top.metric.c_str());
  for (const auto& r : top.rows) {
    std::string names;
    for (const auto& n : r.member_names) names += (names.empty() ? "" : ",") + n;
    char gain[32] = "-";
    if (r.has_base) std::snprintf(gain, sizeof gain, "%+.4f", r.gain);
    std::printf("%s %s n=%d %s=%.4f +-%.4f gain=%s members=%s params=%s\n", archive::config_id_hex(r.config.id).c_str(),
                r.config.method.c_str(), r.config.n, top.metric.c_str(), r.value, r.stderr_, gain, names.c_str(),
                r.config.params.c_str());
  }
  return kExitOk;
}

int run_model(int argc, char** argv) {
  std::string path, id_text, out, mergekit, device = "cpu";
  po::options_description opts(
      "usage: mergesweep archive model ARCHIVE CONFIG_ID OUT [--mergekit FILE] [--device D]\n\n"
      "Rebuilds the merged model of config CONFIG_ID (hex, as `sweep --plan --list` and `archive top`\n"
      "print it) as a Hugging Face folder OUT, from what the archive recorded: the members, the\n"
      "method and its parameters (DARE's seed among them; masks depend on each member's global\n"
      "checkpoint number, as in the sweep), the spec's vocabulary choice, and the spec's eval dtype,\n"
      "which the tensors are written in (the sweep evaluated the float32 merge cast to it). Before\n"
      "merging, every file of the base and the members must still have the sha256 the archive\n"
      "recorded; otherwise the command refuses, naming the file. OUT gets README.md: method, members,\n"
      "parameters, the archive's scores with gains over the base, plan hash, mergesweep version.\n"
      "Relative checkpoint paths are tried from the current folder, then from the archive's.\n"
      "The rebuilt folder's fingerprint (XXH64 of its tensors) is checked against the one the sweep\n"
      "recorded for the model it evaluated (archives of format 5 on): exit 0 when they match or the\n"
      "archive has none, exit 1 with a warning when they differ (OUT is kept for inspection).\n"
      "A sweep that merged on a GPU rounds differently from the CPU (docs/archive.md).\n\noptions");
  opts.add_options()("help,h", "show this help")(
      "mergekit", po::value(&mergekit), "also write the mergekit YAML of the same merge to FILE (mergekit-yaml FILE OUT)")(
      "mergekit-only", "write only the --mergekit YAML (OUT may then be omitted; no checkpoint is read)")(
      "device", po::value(&device)->default_value(device), "where tensors are merged: cpu, cuda or auto")(
      "quiet,q", "no summary on stderr");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts,
                          {{"archive", 1, po::value(&path), "expected ARCHIVE CONFIG_ID OUT"},
                           {"config", 1, po::value(&id_text), "expected CONFIG_ID (hex) after ARCHIVE"},
                           {"out", 1, po::value(&out), nullptr}},
                          vm))
    return kExitOk;
  const bool only_yaml = vm.count("mergekit-only") > 0;
  if (only_yaml && mergekit.empty()) throw po::error("--mergekit-only needs --mergekit FILE");
  if (!only_yaml && out.empty()) throw po::error("expected OUT, the folder of the rebuilt model");
  auto plan = archive::plan_rebuild(path, archive::parse_config_id(id_text, "CONFIG_ID"));
  // The YAML first: a config mergekit cannot express is refused before minutes of merging.
  if (!mergekit.empty()) io::write_text_file(mergekit, archive::mergekit_yaml(plan));
  if (only_yaml) return kExitOk;
  const auto dev = model::resolve_device(device, node_slot().rank, "", "--device");
  const std::string describe = plan.job.request.describe();
  const auto rep = archive::rebuild_model(plan, out, dev);
  if (!vm.count("quiet"))
    std::fprintf(stderr, "mergesweep archive model: %s -> %s: %zu tensors, checkpoints match the archive's sha256, "
                         "L2 from base %.6g\n", describe.c_str(), out.c_str(), rep.merge.tensors, rep.merge.l2_from_base);
  const std::string verdict = archive::describe_verdict(plan, rep);
  if (rep.verdict == archive::RebuildReport::Verdict::Mismatch) {
    std::fprintf(stderr, "mergesweep: warning: %s: %s\n", out.c_str(), verdict.c_str());
    return kExitError;
  }
  // The verdict is the point of the command: printed even with --quiet.
  std::fprintf(stderr, "mergesweep archive model: %s: %s\n", out.c_str(), verdict.c_str());
  return kExitOk;
}

}  // namespace

int run_archive(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::cout << kOverview;
    return argc < 2 ? kExitUsage : kExitOk;
  }
  const std::string cmd = argv[1];
  if (cmd == "info" || cmd == "summary") return run_info(argc - 1, argv + 1);
  if (cmd == "verify") return run_verify(argc - 1, argv + 1);
  if (cmd == "export") return run_export(argc - 1, argv + 1);
  if (cmd == "merge") return run_merge_archives(argc - 1, argv + 1);
  if (cmd == "top") return run_top(argc - 1, argv + 1);
  if (cmd == "model") return run_model(argc - 1, argv + 1);
  throw po::error("unknown command '" + cmd + "' (info, summary, verify, export, merge, top or model)");
}

}  // namespace ms::cli
