// mergesweep sweep: placeholder until its module lands.
#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::cli {
int run_sweep(int, char**) { fail("", "sweep", "not built yet"); }
}  // namespace ms::cli
