// mergesweep report ARCHIVE --out DIR [...]: runs the analysis package (python3 -m analysis report)
// with the project's interpreter, so that tables and figures come from one implementation.
//
// Interpreter: $MS_PYTHON if set; else <checkout>/.venv/bin/python, where <checkout> is the first
// ancestor folder of this executable holding analysis/__main__.py (a build tree lives inside the
// checkout); else python3 on PATH. That checkout is put first on PYTHONPATH so `-m analysis`
// finds the package without installing it. The process is replaced (exec), so the exit status
// is the analysis package's own: 0 done, 1 unreadable archive or failed step, 2 bad command line.
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mergesweep/cli/verbs.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::cli {
namespace {

bool is_file(const std::string& p) { return access(p.c_str(), R_OK) == 0; }
bool is_exec(const std::string& p) { return access(p.c_str(), X_OK) == 0; }

std::string self_path() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = '\0';
  return buf;
}

// The checkout that holds the analysis package, searched upwards from the executable.
std::string find_checkout() {
  std::string dir = self_path();
  while (!dir.empty()) {
    auto slash = dir.find_last_of('/');
    if (slash == std::string::npos) break;
    dir.resize(slash);
    if (is_file((dir.empty() ? "" : dir) + "/analysis/__main__.py")) return dir.empty() ? "/" : dir;
  }
  return "";
}

}  // namespace

int run_report(int argc, char** argv) {
  const std::string root = find_checkout();
  std::string python;
  if (const char* env = std::getenv("MS_PYTHON"); env && *env) {
    python = env;
  } else if (!root.empty() && is_exec(root + "/.venv/bin/python")) {
    python = root + "/.venv/bin/python";
  } else {
    python = "python3";
  }
  if (!root.empty()) {
    const char* old = std::getenv("PYTHONPATH");
    std::string pp = root + (old && *old ? std::string(":") + old : std::string());
    setenv("PYTHONPATH", pp.c_str(), 1);
  }
  std::vector<std::string> args = {python, "-m", "analysis", "report"};
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  std::vector<char*> cargs;
  cargs.reserve(args.size());
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  execvp(python.c_str(), cargs.data());
  fail(python, "report",
       std::string("cannot run the analysis interpreter: ") + std::strerror(errno) +
           " (set MS_PYTHON to a Python 3 with h5py, numpy, pandas, scipy, matplotlib)");
}

}  // namespace ms::cli
