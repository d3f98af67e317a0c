// Building blocks shared by the two scoring paths (internal to ms_eval): the per-item reference
// path in scoring.cpp and the prefix-tree batches in scoring_packed.cpp.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mergesweep/eval/scoring.hpp"

namespace ms::model { class Decoder; }

namespace ms::eval::detail {

// lm-eval's max_length: the option, else the model's max_position_embeddings (validated).
std::int64_t effective_max_length(const model::Decoder& model, const ScoreOptions& opts, const std::string& path);

// int64 [rows, width] from rows of ids (shorter rows zero-padded).
at::Tensor ids_tensor(const std::vector<std::vector<std::int64_t>>& rows, std::int64_t width);

// Log-probabilities of `targets` and whether each is the argmax, from hidden states [P, H] of the
// scored positions (in order): float32 [P] and bool [P] on the CPU. Only these rows reach lm_head.
std::pair<at::Tensor, at::Tensor> gather_logprobs(const model::Decoder& model, const at::Tensor& hidden,
                                                  const std::vector<std::int64_t>& targets);

struct Sink {
  ItemScore* score;
  std::size_t choice;
};

// Adds per-token log-probs (float32, summed in double in token order) to each choice's score:
// sink k takes the next lengths[k] entries.
void accumulate(const at::Tensor& lp, const at::Tensor& greedy, const std::vector<Sink>& sinks,
                const std::vector<std::int64_t>& lengths);

// One choice on its own: lm-eval's left-truncated input, the last |cont| positions scored.
void score_alone(const model::Decoder& model, const TaskItem& item, std::size_t c, std::int64_t max_len,
                 const at::Device& device, ItemScore& out);

// Items [begin, end) as prefix-tree batches (out[i - begin] receives item i).
void score_packed(const model::Decoder& model, const TaskPack& pack, std::size_t begin, std::size_t end,
                  std::int64_t max_len, const ScoreOptions& opts, std::vector<ItemScore>& out);

}  // namespace ms::eval::detail
