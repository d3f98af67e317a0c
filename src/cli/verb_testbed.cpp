// mergesweep testbed: placeholder until its module lands.
#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::cli {
int run_testbed(int, char**) { fail("", "testbed", "not built yet"); }
}  // namespace ms::cli
