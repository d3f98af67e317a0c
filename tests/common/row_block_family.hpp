// A model family whose tensors span several row blocks (merge.hpp: kRowBlockElements): an
// embedding of two blocks, an lm_head of one and a half, an SVD-merged and boosted MLP projection
// above one block, a 1-D tensor above one block, a norm vector and a small projection. Fine-tunes
// are the base plus values on a coarse grid, so |τ| has many exact ties (the TIES tie rule is
// exercised); fine-tune 0 leaves lm_head as the base's (τ = 0: a trim threshold of 0).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ms::test {

const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& row_block_tensors();
// Writes DIR/base and DIR/ft-0 .. ft-(checkpoints-1) as Hugging Face folders in `dtype`
// ("float32" or "bfloat16").
void write_row_block_family(const std::string& dir, int checkpoints, const std::string& dtype = "float32");

}  // namespace ms::test
