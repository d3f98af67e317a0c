// Hub names resolve from a local cache laid out as huggingface_hub lays it out (blobs/, snapshots/
// <commit>/ of symlinks into blobs/, refs/<branch>), offline; a missing name is refused with the
// command that downloads it.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "common/test_util.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/io/hub_cache.hpp"

namespace ms::io {
namespace {

namespace fs = std::filesystem;

const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";
const std::string kOld = "fedcba9876543210fedcba9876543210fedcba98";

// models--org--tiny with a `main` ref to kCommit and a tag v1 to kOld; each snapshot holds the
// files of `src` as symlinks to content-addressed blobs, as huggingface_hub writes them.
void write_cache(const std::string& cache, const std::string& src) {
  const fs::path repo = fs::path(cache) / "models--org--tiny";
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "refs");
  std::ofstream(repo / "refs/main") << kCommit;
  std::ofstream(repo / "refs/v1") << kOld << "\n";
  for (const std::string& commit : {kCommit, kOld}) {
    fs::create_directories(repo / "snapshots" / commit);
    for (const auto& e : fs::directory_iterator(src)) {
      const std::string blob = commit.substr(0, 8) + "-" + e.path().filename().string();
      fs::copy_file(e.path(), repo / "blobs" / blob);
      fs::create_symlink(fs::path("../../blobs") / blob, repo / "snapshots" / commit / e.path().filename());
    }
  }
}

class HubCache : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(test::run_cli("synth --out " + (dir_ / "fam") + " --checkpoints 1 --preset tiny").exit_code, 0);
    write_cache(dir_ / "hub", dir_ / "fam/base");
    setenv("HF_HUB_CACHE", (dir_ / "hub").c_str(), 1);
  }
  void TearDown() override { unsetenv("HF_HUB_CACHE"); }
  test::TempDir dir_;
};

TEST_F(HubCache, NamesResolveToSnapshotsByBranchTagOrCommit) {
  const std::string root = dir_ / "hub/models--org--tiny/snapshots/";
  EXPECT_EQ(resolve_model_path("org/tiny", "", "MODEL"), root + kCommit);
  EXPECT_EQ(resolve_model_path("org/tiny@v1", "", "MODEL"), root + kOld);
  EXPECT_EQ(resolve_model_path("org/tiny@" + kOld, "", "MODEL"), root + kOld);
  const HubSnapshot snap = hub_snapshot_of(root + kCommit);
  EXPECT_EQ(snap.repo, "org/tiny");
  EXPECT_EQ(snap.commit, kCommit);
  // The snapshot's symlinks read like a folder.
  EXPECT_GT(HfModel::open(resolve_model_path("org/tiny", "", "MODEL")).num_tensors(), 0u);
  // An existing local path wins, and what is no hub name is a plain missing path.
  EXPECT_EQ(resolve_model_path(dir_ / "fam/base", "", "MODEL"), dir_ / "fam/base");
  EXPECT_NE(test::error_of([] { resolve_model_path("./nope", "x.yaml", "base"); }).find("x.yaml: base: './nope': no such file or folder"),
            std::string::npos);
}

TEST_F(HubCache, AMissingNameOrRevisionSaysHowToDownloadIt) {
  std::string e = test::error_of([] { resolve_model_path("org/absent", "s.yaml", "checkpoints[0]"); });
  EXPECT_NE(e.find("s.yaml: checkpoints[0]: 'org/absent': no such file or folder, nor a hub model"), std::string::npos) << e;
  EXPECT_NE(e.find("huggingface-cli download org/absent"), std::string::npos) << e;
  e = test::error_of([] { resolve_model_path("org/tiny@v2", "", "MODEL"); });
  EXPECT_NE(e.find("no revision 'v2'"), std::string::npos) << e;
  EXPECT_NE(e.find("--revision v2"), std::string::npos) << e;
}

TEST_F(HubCache, EveryVerbAcceptsAHubName) {
  // inspect and eval take MODEL; merge YAML models and sweep specs take them too (see the CLI).
  const auto r = test::run_cli("inspect org/tiny --summary");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string yaml = dir_ / "m.yaml";
  std::ofstream(yaml) << "merge_method: task_arithmetic\nbase_model: org/tiny\nmodels:\n  - model: org/tiny@v1\n"
                         "  - model: " + (dir_ / "fam/ft-00") + "\nparameters: {lambda: 0.5}\n";
  const auto m = test::run_cli("merge " + yaml + " " + (dir_ / "out"));
  EXPECT_EQ(m.exit_code, 0) << m.err;
  std::ofstream(yaml) << "merge_method: task_arithmetic\nbase_model: org/tiny\nmodels:\n  - model: org/nothere\n";
  const auto bad = test::run_cli("merge " + yaml + " " + (dir_ / "out2"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("models[0].model: line 4: 'org/nothere'"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir_ / "out2"));
}

}  // namespace
}  // namespace ms::io
