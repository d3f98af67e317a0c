// A family as hub checkpoints come: the same values stored in mixed dtypes. From a float32 family
// it writes two twins holding the same values: MIXED stores the base and each checkpoint in the
// dtypes of `plan` (per tensor when a plan entry is "mixed": bf16, f16 and f32 in turn), REF
// stores every tensor in float32 after rounding it through that dtype. Every merge of the two
// must be bitwise equal: the engine widens each tensor from its own stored dtype, exactly.
#pragma once

#include <string>
#include <vector>

namespace ms::test {

struct MixedPlan {
  std::string base = "float32";  // float32, bfloat16, float16 or mixed
  std::vector<std::string> checkpoints = {"bfloat16", "float16", "mixed", "float32"};
};

// SRC holds base/ and ft-0.. (or ft-00..) folders; `names` lists the checkpoint folder names.
void write_mixed_twins(const std::string& src, const std::vector<std::string>& names, const MixedPlan& plan,
                       const std::string& mixed, const std::string& ref);

}  // namespace ms::test
