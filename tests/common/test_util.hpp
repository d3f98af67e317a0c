// Helpers shared by the GoogleTest suites: temporary folders, running the CLI, reading files.
#pragma once

#include <functional>
#include <string>

namespace ms::test {

// A fresh folder under $TMPDIR, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct RunResult {
  int exit_code = -1;    // -1 when killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

// Runs the mergesweep CLI with `args` (a shell-quoted string) from directory `cwd`.
RunResult run_cli(const std::string& args, const std::string& cwd = ".");

std::string read_file(const std::string& path);
std::string source_path(const std::string& relative);  // inside the repository

// Runs `fn` and returns the text of the ms::Error it throws; when it throws nothing the test fails
// and the result is "<no error>" (so a check for an expected message fails too).
std::string error_of(const std::function<void()>& fn);

// The multi-rank suites' launcher: "mpirun ... -np N " (root allowed, oversubscribed, unbound).
std::string mpirun(int np);
// Runs a shell command line; its exit status (-1 when killed by a signal).
int sh(const std::string& cmd);

// Runs a shell command line in the background, in a process group of its own; `pid` is the
// command's own process (the shell execs it).
struct Proc {
  int pid = -1;
  explicit Proc(const std::string& cmd);
  int wait_status();  // exit status, or 128 + signal
};

}  // namespace ms::test
