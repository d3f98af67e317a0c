// `mergesweep archive model` and `archive top` on a real sweep of the tiny testbed: the rebuilt
// tensors are bitwise the ones the sweep merged (the sweep's own path: the spec's plan, the
// planned request, merge::ResidentModels), and for task arithmetic and TIES bitwise what
// `mergesweep merge` makes of the exported mergekit YAML; mergekit 0.1.5 itself (MS_MERGEKIT =
// path of mergekit-yaml) is compared within a stated tolerance. A changed or missing checkpoint
// file is refused by name; `archive top` orders as documented.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "archive/archive_fixture.hpp"
#include "common/test_util.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/archive/fs_check.hpp"
#include "mergesweep/archive/rebuild.hpp"
#include "mergesweep/core/fingerprint.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/merge/resident.hpp"
#include "mergesweep/sweep/planner.hpp"
#include "mergesweep/sweep/spec.hpp"

namespace ms {
namespace {

namespace fs = std::filesystem;

// One family, one sweep (TA at two lambdas, per-tensor TIES, DARE-TIES with a seed), made once.
struct Study {
  test::TempDir dir;
  std::string spec, archive;
  std::map<std::string, std::uint64_t> by_method;  // one merge config of each method (n = 3)
};

std::string hex(std::uint64_t id) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(id));
  return b;
}

const Study& study() {
  static Study* s = [] {
    auto* st = new Study();  // lives for the whole binary
    const std::string fam = st->dir / "tb";
    auto r = test::run_cli("testbed --preset tiny --quiet --seed 3 --out " + fam);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    st->spec = st->dir / "spec.yaml";
    st->archive = st->dir / "study.h5";
    std::ofstream(st->spec) << "name: rebuild\nbase: '" << fam << "/base'\ncheckpoints: '" << fam
                            << "/ft-*'\nsubsets: {sizes: [2, 3], samples: 2, seed: 11}\nmethods:\n"
                               "  - {method: task_arithmetic, lambda: [0.5, 1.0]}\n"
                               "  - {method: ties, density: 0.3}\n"
                               "  - {method: dare_ties, density: 0.5, seed: 7}\n"
                               "eval:\n  tasks: '"
                            << fam << "/tasks/*.h5'\n  limit: 4\noutput: '" << st->archive << "'\n";
    r = test::run_cli("sweep --quiet " + st->spec);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    for (const auto& c : archive::read(st->archive).configs)
      if (c.config.kind == "merge" && c.config.n == 3 && !st->by_method.count(c.config.method))
        st->by_method[c.config.method] = c.config.id;
    return st;
  }();
  return *s;
}

// What the sweep merged for config `id`: its plan, its request, the resident merge (float32; the
// eval dtype of this spec is float32 too).
std::map<std::string, at::Tensor> sweep_merge(std::uint64_t id) {
  const sweep::SweepSpec spec = sweep::load_spec(study().spec);
  const sweep::Plan plan = sweep::make_plan(spec);
  for (const auto& c : plan.configs) {
    if (c.id != id) continue;
    merge::ResidentOptions ro;
    ro.vocab = spec.vocab_choice();
    merge::ResidentModels res(spec.base, spec.checkpoints, {}, ro);
    merge::LocalReducer reducer;
    std::map<std::string, at::Tensor> out;
    res.merge(c.request(spec), out, reducer);
    return out;
  }
  ADD_FAILURE() << "config " << hex(id) << " is not in the plan";
  return {};
}

// "" when every tensor of the two folders is bitwise equal, else the first difference.
std::string compare(const std::string& a_dir, const std::map<std::string, at::Tensor>& b, double atol = 0) {
  const io::HfModel a = io::HfModel::open(a_dir);
  if (a.tensor_names().size() != b.size()) return "tensor counts differ";
  for (const auto& name : a.tensor_names()) {
    if (!b.count(name)) return name + " missing";
    const at::Tensor x = a.tensor(name).to(at::kFloat), y = b.at(name).to(at::kFloat);
    if (atol == 0 ? !at::equal(x, y) : (x - y).abs().max().item<double>() > atol)
      return name + ": max |diff| " + std::to_string((x - y).abs().max().item<double>());
  }
  return "";
}

std::map<std::string, at::Tensor> load(const std::string& dir) {
  const io::HfModel m = io::HfModel::open(dir);
  std::map<std::string, at::Tensor> out;
  for (const auto& n : m.tensor_names()) out[n] = m.tensor(n).clone();
  return out;
}

// The archive's fingerprint of config `id` ("" when it has none).
std::string recorded_fingerprint(const std::string& archive, std::uint64_t id) {
  for (const auto& c : archive::read(archive).configs)
    if (c.config.id == id && !c.fingerprints.empty()) return fingerprint_hex(c.fingerprints[0].fingerprint);
  return "";
}

// The fingerprint's definition applied to tensors in memory (contiguous, as held).
std::uint64_t fingerprint_of(const std::map<std::string, at::Tensor>& tensors) {
  std::vector<std::pair<std::string, std::uint64_t>> d;
  for (const auto& [name, t] : tensors) {
    const at::Tensor c = t.contiguous();
    d.emplace_back(name, xxh64(c.data_ptr(), static_cast<std::size_t>(c.numel()) * c.element_size()));
  }
  return model_fingerprint(d);
}

TEST(ArchiveModel, RebuildsWhatTheSweepMerged) {
  const Study& s = study();
  ASSERT_EQ(s.by_method.size(), 3u);
  for (const auto& [method, id] : s.by_method) {
    const std::string out = s.dir / ("rebuilt-" + method);
    const auto r = test::run_cli("archive model -q " + s.archive + " " + hex(id) + " " + out);
    ASSERT_EQ(r.exit_code, 0) << method << ": " << r.err;
    // The sweep's fingerprint is the one of the tensors it merged (float32 here), and the rebuild's
    // of its files; the command says they match.
    const std::string fp = recorded_fingerprint(s.archive, id);
    EXPECT_EQ(fp, fingerprint_hex(fingerprint_of(sweep_merge(id)))) << method;
    EXPECT_EQ(fingerprint_hex(archive::folder_fingerprint(out)), fp) << method;
    EXPECT_NE(r.err.find("fingerprint " + fp + " matches the archive's: this is the model the sweep evaluated"),
              std::string::npos) << method << ": " << r.err;
    // DARE included: the masks are keyed by the global checkpoint index and the seed, as in the sweep.
    EXPECT_EQ(compare(out, sweep_merge(id)), "") << method;
    const std::string card = test::read_file(out + "/README.md");
    for (const std::string& want : {method, hex(id), std::string("plan_hash"), std::string("testbed_arith"),
                                   std::string("ft-"), archive::read(s.archive).attributes.at("plan_hash")})
      EXPECT_NE(card.find(want), std::string::npos) << method << ": card lacks " << want;
  }
}

// An archive whose recorded fingerprint is not the rebuilt model's (a copy with one value changed,
// as a rebuild on other hardware or a changed merge would look): warning, exit 1, OUT kept.
TEST(ArchiveModel, AFingerprintThatDiffersIsAWarningWithExit1) {
  const Study& s = study();
  const std::uint64_t id = s.by_method.at("ties");
  const std::string copy = s.dir / "tampered.h5", out = s.dir / "rebuilt-tampered";
  fs::copy_file(s.archive, copy, fs::copy_options::overwrite_existing);
  std::uint64_t row = 0, found = 0;
  for (const auto& c : archive::read(copy).configs) {  // rows in commit order, as read() returns them
    if (c.config.id == id) found = row;
    row += c.fingerprints.size();
  }
  archive::test::poke_u64(copy, "/fingerprints/fingerprint", found, 0x0123456789abcdefULL);
  ASSERT_EQ(recorded_fingerprint(copy, id), "0123456789abcdef") << "the poked row is this config's";
  const auto r = test::run_cli("archive model " + copy + " " + hex(id) + " " + out);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("mergesweep: warning: " + out + ": fingerprint " + recorded_fingerprint(s.archive, id) +
                       " (float32) DIFFERS from the archive's 0123456789abcdef (float32): this is NOT the model"),
            std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(out + "/README.md"));
  EXPECT_NE(test::read_file(out + "/README.md").find("DIFFERS"), std::string::npos);
}

// eval.dtype bfloat16: the sweep casts its float32 merge into the gather buffer, the rebuild
// writes bf16 files; their bytes, so their fingerprints, agree.
TEST(ArchiveModel, ABfloat16SweepsFingerprintMatchesItsRebuild) {
  const Study& s = study();
  const std::string spec = s.dir / "bf16.yaml", arch = s.dir / "bf16.h5", fam = s.dir / "tb";
  std::ofstream(spec) << "name: bf16\nbase: '" << fam << "/base'\ncheckpoints: '" << fam
                      << "/ft-*'\nsubsets: {sizes: [3], samples: 1, seed: 5}\nmethods:\n"
                         "  - {method: task_arithmetic, lambda: 0.7}\neval:\n  tasks: '"
                      << fam << "/tasks/*.h5'\n  limit: 2\n  dtype: bfloat16\noutput: '" << arch << "'\n";
  auto r = test::run_cli("sweep --quiet " + spec);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::uint64_t id = 0;
  for (const auto& c : archive::read(arch).configs)
    if (c.config.kind == "merge") {
      id = c.config.id;
      ASSERT_EQ(c.fingerprints.size(), 1u);
      EXPECT_EQ(c.fingerprints[0].dtype, "bfloat16");
    }
  r = test::run_cli("archive model " + arch + " " + hex(id) + " " + (s.dir / "rebuilt-bf16"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("this is the model the sweep evaluated"), std::string::npos) << r.err;
}

// The exported YAML through `mergesweep merge`: bitwise for TA and TIES. DARE's YAML is refused:
// the sweep's default rescale (1/density) has no mergekit equivalent. (A `mergesweep merge` of a
// DARE YAML would differ anyway: it numbers members by their position in `models`, the sweep by
// their global checkpoint index, and the masks depend on it.)
TEST(ArchiveModel, MergekitYamlThroughMergeIsBitwiseTheRebuild) {
  const Study& s = study();
  for (const char* method : {"task_arithmetic", "ties"}) {
    const std::string id = hex(s.by_method.at(method)), yaml = s.dir / (std::string(method) + ".yaml");
    auto r = test::run_cli("archive model " + s.archive + " " + id + " --mergekit " + yaml + " --mergekit-only");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string direct = s.dir / (std::string("direct-") + method);
    r = test::run_cli("merge -q " + yaml + " " + direct);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(compare(direct, sweep_merge(s.by_method.at(method))), "") << method;
  }
  const auto r = test::run_cli("archive model " + s.archive + " " + hex(s.by_method.at("dare_ties")) + " --mergekit " +
                               (s.dir / "dare.yaml") + " --mergekit-only");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("rescale=inverse_density"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(s.dir / "dare.yaml"));
}

// mergekit 0.1.5 on the YAML. It computes in float32 in another order (deltas weighted, summed,
// normalized, scaled, added); tolerance 1e-6 absolute on weights of order 1 (seen: bitwise).
TEST(ArchiveModel, MergekitRebuildsTheSameModel) {
  const char* mk = std::getenv("MS_MERGEKIT");
  if (!mk || !*mk) GTEST_SKIP() << "MS_MERGEKIT (the path of mergekit 0.1.5's mergekit-yaml) is not set";
  const Study& s = study();
  for (const char* method : {"task_arithmetic", "ties"}) {
    const std::string id = hex(s.by_method.at(method)), yaml = s.dir / (std::string("mk-") + method + ".yaml");
    const std::string rebuilt = s.dir / (std::string("mk-rebuilt-") + method), theirs = s.dir / (std::string("mk-") + method);
    const auto r = test::run_cli("archive model -q " + s.archive + " " + id + " " + rebuilt + " --mergekit " + yaml);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(test::sh(std::string(mk) + " " + yaml + " " + theirs + " --no-write-model-card --quiet >/dev/null 2>&1"), 0);
    EXPECT_EQ(compare(theirs, load(rebuilt), 1e-6), "") << method;
  }
}

// Flips one byte of a member's weights (restored afterwards), then hides its config.json.
TEST(ArchiveModel, RefusesAChangedOrMissingCheckpointByName) {
  const Study& s = study();
  const std::uint64_t id = s.by_method.at("task_arithmetic");
  archive::ConfigRecord cfg;
  for (const auto& c : archive::read(s.archive).configs)
    if (c.config.id == id) cfg = c.config;
  const std::string member = s.dir / ("tb/ft-" + std::string(cfg.members[1] - 1 < 10 ? "0" : "") +
                                      std::to_string(cfg.members[1] - 1));
  const std::string weights = member + "/model.safetensors", backup = s.dir / "backup.safetensors";
  fs::copy_file(weights, backup, fs::copy_options::overwrite_existing);
  {
    std::fstream f(weights, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    const char c = static_cast<char>(f.get() ^ 0x01);
    f.seekp(-1, std::ios::end);
    f.put(c);
  }
  const std::string out = s.dir / "refused";
  auto r = test::run_cli("archive model " + s.archive + " " + hex(id) + " " + out);
  fs::copy_file(backup, weights, fs::copy_options::overwrite_existing);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(weights + ": changed since the sweep"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));

  fs::rename(member + "/config.json", s.dir / "config.json.away");
  r = test::run_cli("archive model " + s.archive + " " + hex(id) + " " + out);
  fs::rename(s.dir / "config.json.away", member + "/config.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(member + "/config.json: missing"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));

  // Restored: accepted again; an existing OUT is refused.
  EXPECT_EQ(test::run_cli("archive model -q " + s.archive + " " + hex(id) + " " + out).exit_code, 0);
  r = test::run_cli("archive model " + s.archive + " " + hex(id) + " " + out);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
}

TEST(ArchiveModel, RefusesBaselinesAndUnknownIds) {
  const Study& s = study();
  auto r = test::run_cli("archive model " + s.archive + " " + hex(sweep::base_config_id()) + " " + (s.dir / "x"));
  EXPECT_NE(r.err.find("is the base alone, not a merge"), std::string::npos) << r.err;
  r = test::run_cli("archive model " + s.archive + " 0123456789abcdef " + (s.dir / "x"));
  EXPECT_NE(r.err.find("no such config"), std::string::npos) << r.err;
  r = test::run_cli("archive model " + s.archive + " not-hex " + (s.dir / "x"));
  EXPECT_NE(r.err.find("'not-hex' is not a config id"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(s.dir / "x"));
}

// Checkpoints by name where a user reads results: the plan's list, archive info (models, not
// files), the exports' member_names next to members.
TEST(ArchiveNames, CheckpointsShowByNameInThePlanInfoAndExports) {
  const Study& s = study();
  auto r = test::run_cli("sweep " + s.spec + " --plan --list");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("checkpoints (number name): 1 ft-00 2 ft-01 3 ft-02"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" {ft-00}\n"), std::string::npos) << r.out;  // checkpoint 1 alone
  EXPECT_EQ(r.out.find(" {1}\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(",ft-0"), std::string::npos) << "merges list their members by name: " << r.out;
  if (!archive::classify_fs_magic(archive::fs_magic_of(s.archive).value_or(0))) {  // a local disk: no warning
    EXPECT_EQ(r.err.find("warning:"), std::string::npos) << r.err;
  }
  const auto contents = archive::read(s.archive);
  std::set<int> models;
  for (const auto& f : contents.checkpoints) models.insert(f.model);
  r = test::run_cli("archive info " + s.archive);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("models: the base (base) and " + std::to_string(models.size() - 1) + " checkpoints, in " +
                       std::to_string(contents.checkpoints.size()) + " files\n  1 ft-00, 2 ft-01"),
            std::string::npos) << r.out;
  r = test::run_cli("archive export " + s.archive + " --out " + (s.dir / "names-export"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string configs = test::read_file(s.dir / "names-export/configs.csv");
  EXPECT_EQ(configs.rfind("config_id,kind,method,params,n,sample,members,member_names\n", 0), 0u) << configs;
  for (const auto& c : contents.configs) {
    if (c.config.kind != "merge") continue;
    std::string nums, names;
    for (int k : c.config.members) {
      nums += (nums.empty() ? "" : ",") + std::to_string(k);
      names += (names.empty() ? "" : ",") + std::string(k - 1 < 10 ? "ft-0" : "ft-") + std::to_string(k - 1);
    }
    EXPECT_NE(configs.find("\"" + nums + "\",\"" + names + "\"\n"), std::string::npos) << nums << " " << names;
    break;
  }
}

// Lines: best first by acc, equal scores by config id; gain = value - base; filters apply.
TEST(ArchiveTop, OrdersByTheMetricWithGainsOverTheBase) {
  const Study& s = study();
  const auto contents = archive::read(s.archive);
  double base = 0;
  std::vector<std::pair<double, std::uint64_t>> want;  // (-value, id) sorts best first
  for (const auto& c : contents.configs)
    for (const auto& res : c.results)
      if (res.task == "testbed_count" && res.metric == "acc") {
        if (c.config.kind == "base") base = res.value;
        if (c.config.kind == "merge" && c.config.method == "ties") want.push_back({-res.value, c.config.id});
      }
  std::sort(want.begin(), want.end());
  const auto r = test::run_cli("archive top " + s.archive + " --task testbed_count --method ties --n 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::size_t i = 0;
  while (std::getline(lines, line)) {
    ASSERT_LT(i, want.size());
    EXPECT_EQ(line.substr(0, 17), hex(want[i].second) + " ") << line;
    char gain[32];
    std::snprintf(gain, sizeof gain, "gain=%+.4f", -want[i].first - base);
    EXPECT_NE(line.find(gain), std::string::npos) << line;
    EXPECT_NE(line.find(" ties n="), std::string::npos) << line;
    ++i;
  }
  EXPECT_EQ(i, std::min<std::size_t>(3, want.size()));
  const auto sized = test::run_cli("archive top " + s.archive + " --task testbed_count --size 2 --n 100");
  EXPECT_EQ(sized.out.find(" n=3 "), std::string::npos) << sized.out;
  EXPECT_NE(sized.out.find(" n=2 "), std::string::npos) << sized.out;
  const auto bad = test::run_cli("archive top " + s.archive + " --task nope");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("no scores for task 'nope'"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace ms
