#include "common/test_util.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "mergesweep/core/error.hpp"

namespace ms::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/mergesweep-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string source_path(const std::string& relative) { return std::string(MS_SOURCE_DIR) + "/" + relative; }

RunResult run_cli(const std::string& args, const std::string& cwd) {
  TempDir tmp;
  const std::string cmd = "cd '" + cwd + "' && '" + MS_CLI + "' " + args + " >'" + tmp.path() + "/out' 2>'" +
                          tmp.path() + "/err' </dev/null";
  const int status = std::system(cmd.c_str());
  RunResult r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  // sh reports a child killed by a signal as 128+N.
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  if (r.exit_code > 128) r.signal = r.exit_code - 128, r.exit_code = -1;
  r.out = read_file(tmp.path() + "/out");
  r.err = read_file(tmp.path() + "/err");
  return r;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ms::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an ms::Error, nothing was thrown";
  return "<no error>";
}

std::string mpirun(int np) {
  return "mpirun --allow-run-as-root --oversubscribe --bind-to none -np " + std::to_string(np) + " ";
}

int sh(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Proc::Proc(const std::string& cmd) {
  pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
}

int Proc::wait_status() {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

}  // namespace ms::test
