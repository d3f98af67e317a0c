// A float32 model family whose tensors span several row blocks (merge.hpp: kRowBlockElements):
// an embedding of two blocks, an lm_head of one and a half, an SVD-merged and boosted MLP
// projection above one block, a norm vector and a small projection. Fine-tunes are the base plus
// values on a coarse grid, so |τ| has many exact ties (the TIES tie rule is exercised).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ms::test {

const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& row_block_tensors();
// Writes DIR/base and DIR/ft-0 .. ft-(checkpoints-1) as Hugging Face folders.
void write_row_block_family(const std::string& dir, int checkpoints);

}  // namespace ms::test
