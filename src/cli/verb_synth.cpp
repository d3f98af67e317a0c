// mergesweep synth --out DIR: a synthetic (untrained) model family for I/O and merge work.
#include <boost/program_options.hpp>
#include <cstdio>

#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/units.hpp"
#include "mergesweep/testbed/synthetic_family.hpp"
#include "options.hpp"

namespace po = boost::program_options;

namespace ms::cli {

int run_synth(int argc, char** argv) {
  testbed::SyntheticFamilyOptions o;
  std::string out, shard = "5GB";
  po::options_description opts(
      "usage: mergesweep synth --out DIR [options]\n\n"
      "Writes a synthetic model family as Hugging Face folders: DIR/base (random Llama-architecture\n"
      "weights) and DIR/ft-00.. (the base plus structured deltas: dense, sparse, low-rank and\n"
      "sign-conflicting, cycling with the index). Untrained: for I/O, sharding and merge-math work\n"
      "at any size, not for accuracy. Same seed, same bytes.\n\noptions");
  opts.add_options()
      ("help,h", "show this help")
      ("out", po::value(&out)->required(), "output folder (must not exist)")
      ("preset", po::value(&o.preset)->default_value(o.preset), "size: tiny (~40K params), small (~6M), 100m, 250m")
      ("checkpoints", po::value(&o.checkpoints)->default_value(o.checkpoints), "number of fine-tunes besides the base")
      ("seed", po::value(&o.seed)->default_value(o.seed), "random seed")
      ("dtype", po::value(&o.dtype)->default_value(o.dtype), "bfloat16, float16 or float32")
      ("max-shard-size", po::value(&shard)->default_value(shard), "largest safetensors shard, e.g. 5GB, 500MB, 2GiB");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, {}, vm)) return kExitOk;
  o.max_shard_bytes = parse_byte_size(shard, "--max-shard-size");
  testbed::write_synthetic_family(out, o);
  std::fprintf(stderr, "mergesweep synth: wrote %s/base and %d fine-tunes\n", out.c_str(), o.checkpoints);
  return kExitOk;
}

}  // namespace ms::cli
