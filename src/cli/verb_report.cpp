// mergesweep report: placeholder until its module lands.
#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::cli {
int run_report(int, char**) { fail("", "report", "not built yet"); }
}  // namespace ms::cli
