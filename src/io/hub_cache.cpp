#include "mergesweep/io/hub_cache.hpp"

#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/fs_util.hpp"

namespace ms::io {
namespace {

namespace fs = std::filesystem;

bool hub_chars(const std::string& s) {
  if (s.empty() || s.front() == '.' || s.front() == '-' || s.size() > 96) return false;
  for (const char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return s.find("..") == std::string::npos;
}

bool is_commit_hash(const std::string& s) {
  if (s.size() != 40) return false;
  for (const char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

std::string repo_folder(const std::string& repo) {
  const auto slash = repo.find('/');
  return "models--" + repo.substr(0, slash) + "--" + repo.substr(slash + 1);
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string download_hint(const HubName& h) {
  return "download it where the hub is reachable: huggingface-cli download " + h.repo +
         (h.revision == "main" ? "" : " --revision " + h.revision) +
         " (with HF_HUB_CACHE or HF_HOME set as they are here)";
}

}  // namespace

std::optional<HubName> parse_hub_name(const std::string& text) {
  const auto at = text.find('@');
  const std::string repo = text.substr(0, at);
  const auto slash = repo.find('/');
  if (slash == std::string::npos || repo.find('/', slash + 1) != std::string::npos) return std::nullopt;
  if (!hub_chars(repo.substr(0, slash)) || !hub_chars(repo.substr(slash + 1))) return std::nullopt;
  HubName h{repo, at == std::string::npos ? "main" : text.substr(at + 1)};
  if (h.revision.empty() || h.revision.find('/') != std::string::npos || h.revision.find("..") != std::string::npos)
    return std::nullopt;
  return h;
}

std::string hub_cache_dir() {
  if (const std::string c = env("HF_HUB_CACHE"); !c.empty()) return c;
  if (const std::string h = env("HF_HOME"); !h.empty()) return h + "/hub";
  if (const std::string x = env("XDG_CACHE_HOME"); !x.empty()) return x + "/huggingface/hub";
  return env("HOME") + "/.cache/huggingface/hub";
}

std::string resolve_model_path(const std::string& text, const std::string& file, const std::string& field) {
  if (path_exists(text)) return text;
  const auto hub = parse_hub_name(text);
  if (!hub) fail(file, field, "'" + text + "': no such file or folder");
  const std::string root = hub_cache_dir() + "/" + repo_folder(hub->repo);
  const std::string what = "'" + text + "': no such file or folder, nor a hub model in the local cache " + root;
  if (!is_directory(root)) fail(file, field, what + "; " + download_hint(*hub));
  std::string commit = hub->revision;
  if (!is_commit_hash(commit)) {
    const std::string ref = root + "/refs/" + hub->revision;
    if (!path_exists(ref)) fail(file, field, what + " (no revision '" + hub->revision + "'); " + download_hint(*hub));
    commit = trimmed(read_text_file(ref));
  }
  const std::string snapshot = root + "/snapshots/" + commit;
  if (!is_directory(snapshot))
    fail(file, field, what + " (revision '" + hub->revision + "' points to commit " + commit +
                          ", whose snapshot is absent); " + download_hint(*hub));
  return snapshot;
}

HubSnapshot hub_snapshot_of(const std::string& path) {
  const fs::path p = fs::path(path).lexically_normal();
  fs::path leaf = p.filename().empty() ? p.parent_path() : p;
  const std::string commit = leaf.filename().string();
  const fs::path snaps = leaf.parent_path();
  const std::string repo_dir = snaps.parent_path().filename().string();
  if (snaps.filename() != "snapshots" || repo_dir.rfind("models--", 0) != 0) return {};
  const std::string rest = repo_dir.substr(8);
  const auto sep = rest.find("--");
  if (sep == std::string::npos) return {};
  return {rest.substr(0, sep) + "/" + rest.substr(sep + 2), commit};
}

}  // namespace ms::io
