// Hub names, offline. A user downloads on a login node (`huggingface-cli download org/name`) and
// runs on compute nodes without network: wherever a model path is accepted (sweep spec, merge
// YAML, eval, inspect), `org/name` or `org/name@revision` is accepted too and resolved from the
// local Hugging Face cache, laid out as huggingface_hub lays it out:
//   $HF_HUB_CACHE (else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
//   ~/.cache/huggingface/hub) / models--org--name / refs/<revision> (a commit hash)
//                                                 / snapshots/<commit>/ (the files, symlinks to blobs/)
// Nothing is ever fetched; a name missing from the cache is refused with the command that
// downloads it.
#pragma once

#include <optional>
#include <string>

namespace ms::io {

struct HubName {
  std::string repo;      // org/name
  std::string revision;  // a branch, tag or commit hash ("main" when not given)
};

// `org/name` or `org/name@revision` (hub repository name characters only); nullopt otherwise.
std::optional<HubName> parse_hub_name(const std::string& text);
// The cache folder the environment selects.
std::string hub_cache_dir();
// `text` itself when it names an existing file or folder; else, when it is a hub name, its
// snapshot folder in the local cache. Throws ms::Error naming `file` and `field` when neither.
std::string resolve_model_path(const std::string& text, const std::string& file, const std::string& field);
// For a path inside a cache snapshot (models--org--name/snapshots/<commit>), the commit and the
// repository ("org/name"); empty strings otherwise.
struct HubSnapshot {
  std::string repo, commit;
};
HubSnapshot hub_snapshot_of(const std::string& path);

}  // namespace ms::io
