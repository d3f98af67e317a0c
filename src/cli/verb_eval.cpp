// mergesweep eval: placeholder until its module lands.
#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::cli {
int run_eval(int, char**) { fail("", "eval", "not built yet"); }
}  // namespace ms::cli
