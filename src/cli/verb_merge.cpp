// mergesweep merge CONFIG OUT: one merge from a mergekit-style YAML configuration.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/core/units.hpp"
#include "mergesweep/merge/mergekit_config.hpp"
#include "mergesweep/model/device.hpp"

namespace po = boost::program_options;

namespace ms::cli {
namespace {

std::string method_table() {
  std::string s = "\nmethods (merge_method) and their parameters (top-level `parameters`):\n";
  for (const merge::Method* m : merge::all_methods()) {
    s += "  " + m->name + ": " + m->summary + "\n";
    if (m->uses_weight) s += "      weight (per model, default 1)\n";
    if (m->uses_density) s += "      density (per model, (0, 1], default 1)\n";
    for (const auto& p : m->params) s += "      " + p.name + " = " + p.default_value + ": " + p.help + "\n";
  }
  return s;
}

}  // namespace

int run_merge(int argc, char** argv) {
  std::string config, out, shard = "5GB", device = "cpu";
  po::options_description opts(
      "usage: mergesweep merge CONFIG OUT [options]\n\n"
      "Runs one merge described by a mergekit YAML configuration (merge_method, base_model, models with\n"
      "parameters weight/density, top-level parameters, dtype/out_dtype, tokenizer_source: base) and\n"
      "writes a Hugging Face model folder OUT (config.json, safetensors shards + index, tokenizer files\n"
      "of the base, mergesweep_merge.json recording the method, parameters and variant). Tensors are\n"
      "merged one at a time in float32 and written in the output dtype (default: the base's). OUT is\n"
      "built under a temporary name and appears only when complete.\n\noptions");
  opts.add_options()
      ("help,h", "show this help and the methods with their parameters")
      ("max-shard-size", po::value(&shard)->default_value(shard), "largest output shard, e.g. 5GB, 500MB, 2GiB")
      ("device", po::value(&device)->default_value(device),
       "where tensors are merged: cpu, cuda (GPU local_rank % visible GPUs) or auto (cuda when a GPU is visible)")
      ("quiet,q", "no progress on stderr");
  po::options_description hidden;
  hidden.add_options()("config", po::value(&config))("out", po::value(&out));
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("config", 1).add("out", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << opts << method_table() << "\n";
    return kExitOk;
  }
  if (config.empty() || out.empty()) throw po::error("expected CONFIG and OUT");
  merge::StreamingJob job = merge::read_mergekit_config(config);
  job.out_dir = out;
  job.max_shard_bytes = parse_byte_size(shard, "--max-shard-size");
  job.device = model::resolve_device(device, node_slot().rank, "", "--device");

  // Progress after the first second: a live line on a terminal, a line every 5 s in a log.
  const auto t0 = std::chrono::steady_clock::now();
  const bool tty = ::isatty(STDERR_FILENO);
  double last = 0;
  bool shown = false;
  auto progress = [&](std::size_t done, std::size_t total) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (vm.count("quiet") || s < 1.0 || (!tty && s - last < 5.0 && done != total)) return;
    last = s;
    shown = true;
    const double eta = done ? s / static_cast<double>(done) * static_cast<double>(total - done) : 0;
    std::fprintf(stderr, tty ? "\rmerging: %zu/%zu tensors, %.0f s, ETA %.0f s   " : "merging: %zu/%zu tensors, %.0f s, ETA %.0f s\n",
                 done, total, s, eta);
  };
  const auto rep = merge::merge_streaming(job, progress);
  if (shown && tty) std::fprintf(stderr, "\n");
  if (!vm.count("quiet")) {
    char l2[64] = "";
    if (rep.has_l2) std::snprintf(l2, sizeof l2, ", L2 from base %.4g", rep.l2_from_base);
    std::fprintf(stderr, "mergesweep merge: %s -> %s: %zu tensors, read %s, wrote %s in %.2f s%s\n",
                 job.request.describe().c_str(), out.c_str(), rep.tensors, format_bytes(rep.bytes_read).c_str(),
                 format_bytes(rep.bytes_written).c_str(), rep.seconds, l2);
  }
  return kExitOk;
}

}  // namespace ms::cli
