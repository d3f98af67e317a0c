// The texts that go with a rebuilt model: the mergekit YAML of the same merge and the model card.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "mergesweep/archive/rebuild.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/fingerprint.hpp"
#include "mergesweep/core/version.hpp"
#include "mergesweep/merge/method.hpp"
#include "mergesweep/merge/request.hpp"

namespace fs = std::filesystem;

namespace ms::archive {
namespace {

std::string num(double v) { return merge::format_number(v); }

// YAML double-quoted scalar: a path may hold ':' or '#'.
std::string quoted(const std::string& s) {
  std::string q = "\"";
  for (char c : s) q += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
  return q + "\"";
}

std::string absolute(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

[[noreturn]] void no_equivalent(const RebuildPlan& p, const std::string& what) {
  fail(p.archive, config_id_hex(p.config.id), "no mergekit YAML rebuilds this config: " + what);
}

// mergekit's method and parameters for the merge (names and meanings as mergekit 0.1.5 has them,
// Method::mergekit_form). Ours that mergekit lacks must be at mergekit's fixed behaviour, or no
// YAML rebuilds the config.
merge::MergekitForm mergekit_form(const RebuildPlan& p) {
  merge::MergekitForm f = p.job.request.method->mergekit_form(p.job.request);
  if (!f.refusal.empty()) no_equivalent(p, f.refusal);
  return f;
}

}  // namespace

std::string mergekit_yaml(const RebuildPlan& p) {
  const merge::MergeRequest& r = p.job.request;
  const merge::MergekitForm form = mergekit_form(p);
  const std::string base = absolute(p.job.base_path);
  std::string y = "# mergekit-yaml configuration of config " + config_id_hex(p.config.id) + " of " + p.archive +
                  "\n# (plan_hash " + (p.attributes.count("plan_hash") ? p.attributes.at("plan_hash") : "-") +
                  "), written by mergesweep " + kVersion + ". Run: mergekit-yaml THIS_FILE OUT\n";
  for (std::size_t at = 0; at < form.note.size();) {  // the note as comment lines
    const std::size_t nl = std::min(form.note.find('\n', at), form.note.size());
    y += "# " + form.note.substr(at, nl - at) + "\n";
    at = nl + 1;
  }
  y += "merge_method: " + form.method + "\n";
  // Linear averages the members' weights (the base is not one of them); the others anchor on it.
  if (r.method->needs_base || form.writes_base_model) y += "base_model: " + quoted(base) + "\n";
  y += "models:\n";
  if (form.base_is_first_model) y += "  - model: " + quoted(base) + "\n";
  for (std::size_t i = 0; i < r.members.size(); ++i) {
    y += "  - model: " + quoted(absolute(p.job.member_paths[i])) + "  # " + p.member_names[i] + ", checkpoint " +
         std::to_string(r.members[i].index + 1) + "\n";
    std::string mp;
    if (r.method->uses_weight) mp += "weight: " + num(r.members[i].weight);
    if (r.method->uses_density) mp += std::string(mp.empty() ? "" : ", ") + "density: " + num(r.members[i].density);
    if (!mp.empty()) y += "    parameters: {" + mp + "}\n";
  }
  if (!form.params.empty()) {
    y += "parameters:\n";
    for (const auto& [k, v] : form.params) y += "  " + k + ": " + v + "\n";
  }
  // mergesweep merges in float32 and the sweep evaluated in the eval dtype.
  y += "dtype: float32\nout_dtype: " + p.eval_dtype + "\n";
  return y;
}

std::string describe_verdict(const RebuildPlan& p, const RebuildReport& rep) {
  const std::string mine = fingerprint_hex(rep.fingerprint);
  if (rep.verdict == RebuildReport::Verdict::NotRecorded)
    return "fingerprint " + mine + "; the archive records none for this config (format version " +
           (p.attributes.count("format_version") ? p.attributes.at("format_version") : std::string("?")) +
           ", fingerprints since 5), so it cannot be proven to be the model the sweep evaluated";
  const FingerprintRecord& f = p.fingerprint.front();
  if (rep.verdict == RebuildReport::Verdict::Match)
    return "fingerprint " + mine + " matches the archive's: this is the model the sweep evaluated";
  return "fingerprint " + mine + " (" + p.eval_dtype + ") DIFFERS from the archive's " + fingerprint_hex(f.fingerprint) +
         " (" + f.dtype + "): this is NOT the model the sweep evaluated (a sweep merged on a GPU rounds "
         "differently: rebuild with --device cuda on the same kind of GPU; docs/archive.md)";
}

std::string model_card(const RebuildPlan& p, const RebuildReport& rep) {
  const double l2_from_base = rep.merge.l2_from_base;
  const merge::MergeRequest& r = p.job.request;
  auto attr = [&](const char* k) { return p.attributes.count(k) ? p.attributes.at(k) : std::string("-"); };
  const std::string hex = config_id_hex(p.config.id);
  std::string s = "---\nlibrary_name: transformers\ntags:\n- merge\n- mergesweep\n- " + r.method->name + "\n---\n\n";
  s += "# " + r.method->name + " merge of " + std::to_string(r.members.size()) + " checkpoints (config " + hex + ")\n\n";
  s += "Rebuilt by `mergesweep archive model` (mergesweep " + std::string(kVersion) + ", " + kGitRevision +
       ") from the sweep archive `" + p.archive + "`.\n\n";
  s += "| | |\n|---|---|\n";
  s += "| config id | `" + hex + "` (subset size " + std::to_string(p.config.n) + ", sample " + std::to_string(p.config.sample) + ") |\n";
  s += "| method | `" + r.method->name + "` (" + r.method->summary + ") |\n";
  s += "| parameters | `" + p.config.params + "` |\n";
  s += "| base | " + p.base_name + " (`" + p.job.base_path + "`) |\n";
  s += "| dtype | " + p.eval_dtype + " (the sweep's eval dtype: the tensors the sweep evaluated) |\n";
  s += "| vocabulary | " + p.vocabulary + " |\n";
  s += "| archive plan_hash | `" + attr("plan_hash") + "` |\n";
  s += "| archive written by | mergesweep " + attr("mergesweep_version") + " (" + attr("git_revision") + ") |\n";
  if (l2_from_base >= 0) s += "| ‖θ − θ₀‖₂ | " + num(l2_from_base) + " |\n";
  s += "| fingerprint | " + describe_verdict(p, rep) + " |\n";
  s += "\n## Members\n\n| checkpoint | name | path | weight | density |\n|---|---|---|---|---|\n";
  for (std::size_t i = 0; i < r.members.size(); ++i)
    s += "| " + std::to_string(r.members[i].index + 1) + " | " + p.member_names[i] + " | `" + p.job.member_paths[i] +
         "` | " + num(r.members[i].weight) + " | " + num(r.members[i].density) + " |\n";
  s += "\n## Scores recorded in the archive\n\n| task | metric | value | stderr | items | base | gain over base |\n"
       "|---|---|---|---|---|---|---|\n";
  char b[160];
  for (const auto& res : p.results) {
    std::string base_v = "-", gain = "-";
    for (const auto& br : p.base_results)
      if (br.task == res.task && br.metric == res.metric) {
        std::snprintf(b, sizeof b, "%.4f", br.value);
        base_v = b;
        std::snprintf(b, sizeof b, "%+.4f", lower_is_better(res.metric) ? br.value - res.value : res.value - br.value);
        gain = b;
      }
    std::snprintf(b, sizeof b, "| %.4f | %.4f | %lld | ", res.value, res.stderr_, static_cast<long long>(res.n));
    s += "| " + res.task + " | " + res.metric + " " + b + base_v + " | " + gain + " |\n";
  }
  if (p.results.empty()) s += "| (none: the config's tasks are not scored yet) | | | | | | |\n";
  s += "\nGains are signed so that positive is better (for perplexities and bits per byte, lower is better).\n";
  return s;
}

}  // namespace ms::archive
