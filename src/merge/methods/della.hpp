// Internal: DELLA's magnitude-ranked random drop (della.cpp), exposed for its tests
// (tests/merge/test_mergekit_random.cpp).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace ms::merge::della {

// Each row's ascending ranks of |x| (0 .. cols − 1, float32), equal magnitudes by index, as a
// stable sort ranks them: [rows, cols] in, the same shape out. CPU float32 by a radix sort per row;
// otherwise the stable sort itself.
at::Tensor magnitude_ranks(const at::Tensor& rows);

// Each entry's keep probability, as mergekit 0.1.5's della_magprune defines it: |τ| ranked along
// dim 1 (a vector or scalar as one row), rank_norm = (rank − 1)/(cols − 1) from 0 for the smallest
// magnitude of a row to 1 for its largest, p = (density − epsilon) + rank_norm·2·epsilon, in
// float32 in mergekit's order. A row of one entry (mergekit: 0/0) gets p = density. τ's shape and
// device; ties in magnitude are ranked by index.
at::Tensor keep_probabilities(const at::Tensor& tau, double density, double epsilon);

// The keep-mask (1 kept, 0 dropped; float32, on the CPU, `probabilities`' shape): entry j is kept
// iff u < p_j, u uniform in [0, 1) from the counter-based hash of (seed, configuration,
// checkpoint index, tensor name, element index element_offset + j), the hash of dare_keep_mask.
// So a row block given its own probabilities and offset draws what the whole tensor draws.
at::Tensor keep_mask(std::uint64_t seed, std::uint64_t config, int checkpoint_index, const std::string& tensor,
                     std::int64_t element_offset, const at::Tensor& probabilities);

}  // namespace ms::merge::della
