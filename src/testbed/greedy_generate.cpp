// Greedy generation for testbed.json's exact match: the engine's own (eval::generate_items, the
// code every sweep and `mergesweep eval` run), on a decoder over the training parameters, so the
// testbed reports what the engine will measure. tests/python/test_testbed_hf.py checks the
// recorded exact match against transformers' generate().
#include <ATen/core/grad_mode.h>  // at::NoGradGuard

#include <numeric>

#include "mergesweep/eval/generate.hpp"
#include "mergesweep/model/decoder.hpp"
#include "trainer.hpp"

namespace ms::testbed {

std::vector<std::vector<std::int32_t>> greedy_generate(const Params& params, const io::ModelConfig& cfg,
                                                       const eval::TaskPack& pack) {
  at::NoGradGuard no_grad;
  const auto dec = decoder_of(params, cfg);
  eval::ScoreOptions opts;
  eval::check_generation_pack(pack, *dec, opts);
  std::vector<std::vector<std::int32_t>> out;
  for (const auto& block : eval::generation_blocks(pack, cfg.max_position_embeddings, opts)) {
    const auto gens = eval::generate_items(*dec, pack, block, opts);
    out.resize(pack.items.size());
    for (std::size_t k = 0; k < block.size(); ++k) out[block[k]] = gens[k].tokens;
  }
  return out;
}

}  // namespace ms::testbed
