// mergesweep testbed --out DIR: train the built-in model family (docs/testbed.md).
#include <boost/program_options.hpp>
#include <cstdio>

#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/testbed/testbed.hpp"
#include "options.hpp"

namespace po = boost::program_options;

namespace ms::cli {

int run_testbed(int argc, char** argv) {
  std::string out, preset = "default", dtype = "float32";
  std::uint64_t seed = 0;
  int threads = 0;
  po::options_description opts(
      "usage: mergesweep testbed --out DIR [options]\n\n"
      "Trains the built-in model family in libtorch and writes it as Hugging Face folders:\n"
      "  DIR/base            a small Llama base trained briefly on a mixture of 10 synthetic\n"
      "                      character-level task families (mediocre on purpose)\n"
      "  DIR/ft-00..ft-11    fine-tunes of the base: ft-00..08 continue on the whole mixture with\n"
      "                      their own emphasis, lr, length and data order (ft-00 instruct, ft-01\n"
      "                      math, ft-08 code); ft-09..11 narrow: one family, high lr, no replay\n"
      "  DIR/tasks/*.h5      one multiple-choice task pack per family (held-out items, 4 choices)\n"
      "  DIR/generate/*.h5   one generate_until pack per generation family (reverse a string,\n"
      "                      sum digits): answered by greedy generation, ended by EOS\n"
      "  DIR/probes/*.h5     probe packs: bracket depth, digit parity, length bucket, majority\n"
      "                      letter, balanced brackets, sorted letters\n"
      "  DIR/testbed.json    what was made: seed, sizes, training, per-fine-tune emphasis, accuracies,\n"
      "                      exact match of greedy generation\n"
      "Deterministic: the same seed and options give the same bytes, however many fine-tunes\n"
      "train at once (two, each on one thread). A few minutes on 2 cores (preset tiny: seconds,\n"
      "for tests). Written under a temporary name, renamed at the end.\n\noptions");
  opts.add_options()
      ("help,h", "show this help")
      ("out", po::value(&out), "output folder (must not exist)")
      ("recipe-version", "print the recipe version this mergesweep trains (testbed.json's recipe_version) and exit")
      ("seed", po::value(&seed)->default_value(seed), "random seed (data, initialisation, batches)")
      ("preset", po::value(&preset)->default_value(preset), "default, or tiny (a miniature family for tests)")
      ("dtype", po::value(&dtype)->default_value(dtype), "weights as written: float32 or bfloat16")
      ("threads", po::value(&threads)->default_value(threads),
       "ATen threads while training (0: the preset's fixed count; results depend on it)")
      ("quiet,q", "no progress lines on stderr");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, {}, vm)) return kExitOk;
  if (vm.count("recipe-version")) {
    std::printf("%d\n", testbed::testbed_recipe_version());
    return kExitOk;
  }
  if (out.empty()) throw po::error("the option '--out' is required but missing");
  testbed::TestbedOptions o = testbed::testbed_preset(preset);
  o.seed = seed;
  o.dtype = dtype;
  if (threads < 0) fail("", "--threads", "must be >= 0");
  if (threads > 0) o.train_threads = threads;
  if (!vm.count("quiet")) o.progress = [](const std::string& s) { std::fprintf(stderr, "mergesweep testbed: %s\n", s.c_str()); };
  testbed::write_testbed(out, o);
  if (!vm.count("quiet")) std::fprintf(stderr, "mergesweep testbed: wrote %s\n", out.c_str());
  return kExitOk;
}

}  // namespace ms::cli
