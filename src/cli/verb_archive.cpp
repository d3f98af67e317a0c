// mergesweep archive: placeholder until its module lands.
#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::cli {
int run_archive(int, char**) { fail("", "archive", "not built yet"); }
}  // namespace ms::cli
