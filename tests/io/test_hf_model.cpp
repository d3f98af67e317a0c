// HF model folders: sharded writing, reading back, index validation, atomic output.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/sha256.hpp"
#include "mergesweep/io/hf_model.hpp"

namespace ms::io {
namespace {

namespace fs = std::filesystem;

const char* kConfig = R"({"model_type": "toy", "hidden_size": 8})";

// Deterministic tensors (no RNG, so the bytes are the same with any libtorch version).
std::vector<std::pair<std::string, at::Tensor>> toy_tensors() {
  std::vector<std::pair<std::string, at::Tensor>> t;
  for (int i = 0; i < 6; ++i) {
    t.emplace_back("layer." + std::to_string(i) + ".weight",
                   (at::arange(64 * (i + 1), at::kFloat) * 0.25 - i).reshape({8, -1}).to(at::kBFloat16));
  }
  t.emplace_back("bias", at::arange(8, at::kFloat));
  return t;
}

void write_toy(const std::string& dir, std::uint64_t max_shard) {
  std::vector<TensorSpec> specs;
  for (const auto& [name, t] : toy_tensors()) {
    specs.push_back({name, t.scalar_type() == at::kFloat ? DType::F32 : DType::BF16, t.sizes().vec()});
  }
  HfModelWriter w(dir, specs, max_shard);
  auto tensors = toy_tensors();
  for (auto it = tensors.rbegin(); it != tensors.rend(); ++it) w.write(it->first, it->second);  // any order
  w.set_config_text(kConfig);
  w.commit();
}

TEST(HfModel, ShardedRoundTripKeepsEveryTensor) {
  test::TempDir tmp;
  const std::string dir = tmp / "m";
  write_toy(dir, 1500);
  const auto m = HfModel::open(dir);
  EXPECT_TRUE(m.is_sharded());
  EXPECT_EQ(m.shards().size(), 2u);
  EXPECT_EQ(m.config()->model_type, "toy");
  for (const auto& [name, t] : toy_tensors()) {
    EXPECT_TRUE(m.tensor(name).equal(t)) << name;
  }
  ASSERT_TRUE(m.index_total_size().has_value());
  EXPECT_EQ(*m.index_total_size(), m.total_bytes());
  // The index maps every tensor to the shard that holds it.
  const auto index = nlohmann::json::parse(test::read_file(dir + "/model.safetensors.index.json"));
  EXPECT_EQ(index["weight_map"].size(), toy_tensors().size());
}

TEST(HfModel, SingleShardWritesPlainModelSafetensors) {
  test::TempDir tmp;
  write_toy(tmp / "m", 5'000'000'000ull);
  EXPECT_TRUE(fs::exists(tmp / "m/model.safetensors"));
  EXPECT_FALSE(fs::exists(tmp / "m/model.safetensors.index.json"));
  EXPECT_FALSE(HfModel::open(tmp / "m").is_sharded());
}

TEST(HfModel, ShardPlanPutsOversizedTensorsAlone) {
  test::TempDir tmp;
  write_toy(tmp / "m", 1);  // every tensor is larger than the limit
  EXPECT_EQ(HfModel::open(tmp / "m").shards().size(), toy_tensors().size());
}

// Committed hashes: a change of layout, padding or index text shows here even without PyPI.
TEST(HfModel, WrittenBytesMatchCommittedHashes) {
  test::TempDir tmp;
  write_toy(tmp / "m", 1500);
  const auto expected = nlohmann::json::parse(test::read_file(test::source_path("tests/fixtures/written_hashes.json")));
  std::map<std::string, std::string> got;
  for (const auto& e : fs::directory_iterator(tmp / "m")) got[e.path().filename()] = sha256_file(e.path());
  if (std::getenv("MS_PRINT_HASHES")) {
    for (const auto& [k, v] : got) std::printf("\"%s\": \"%s\",\n", k.c_str(), v.c_str());
  }
  EXPECT_EQ(got, expected.get<decltype(got)>());
}

TEST(HfModel, UncommittedWriterLeavesNothingBehind) {
  test::TempDir tmp;
  {
    HfModelWriter w(tmp / "m", {{"a", DType::F32, {2}}}, 1000);
    const float v[2] = {1, 2};
    w.write("a", v, sizeof v);
    // no commit: as if an error was thrown half-way
  }
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(HfModel, WriterRefusesExistingOutputAndMissingTensors) {
  test::TempDir tmp;
  EXPECT_THROW(HfModelWriter(tmp.path(), {{"a", DType::F32, {2}}}, 1000), Error);
  HfModelWriter w(tmp / "m", {{"a", DType::F32, {2}}, {"b", DType::F32, {1}}}, 1000);
  const float v[2] = {1, 2};
  w.write("a", v, sizeof v);
  EXPECT_THROW(w.write("a", v, 4), Error);  // wrong byte count
  EXPECT_THROW(w.write("zz", v, 4), Error);
  w.set_config_text(kConfig);
  try {
    w.commit();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'b'"), std::string::npos);
  }
}

TEST(HfModel, PassesTokenizerFilesThrough) {
  test::TempDir tmp;
  fs::create_directories(tmp / "src");
  std::ofstream(tmp / "src/tokenizer.json") << "{\"tok\": 1}";
  std::ofstream(tmp / "src/unrelated.txt") << "x";
  HfModelWriter w(tmp / "m", {}, 1000);
  w.set_config_text(kConfig);
  w.copy_passthrough_files(tmp / "src");
  w.commit();
  EXPECT_EQ(test::read_file(tmp / "m/tokenizer.json"), "{\"tok\": 1}");
  EXPECT_FALSE(fs::exists(tmp / "m/unrelated.txt"));
}

std::string open_error(const std::string& dir) {
  try {
    HfModel::open(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

void rewrite_index(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto j = nlohmann::json::parse(test::read_file(dir + "/model.safetensors.index.json"));
  edit(j);
  std::ofstream(dir + "/model.safetensors.index.json") << j.dump();
}

TEST(HfModel, IndexPathsMustStayInsideTheFolder) {
  test::TempDir tmp;
  const std::string dir = tmp / "m";
  write_toy(dir, 1500);
  rewrite_index(dir, [](auto& j) { j["weight_map"]["bias"] = "../m/model-00001-of-00002.safetensors"; });
  EXPECT_NE(open_error(dir).find("escapes the model folder"), std::string::npos);
  rewrite_index(dir, [&](auto& j) { j["weight_map"]["bias"] = dir + "/model-00001-of-00002.safetensors"; });
  EXPECT_NE(open_error(dir).find("is absolute"), std::string::npos);
  // A symlink inside the folder that points outside it.
  write_toy(tmp / "other", 5'000'000'000ull);
  ASSERT_EQ(::symlink((tmp / "other/model.safetensors").c_str(), (dir + "/link.safetensors").c_str()), 0);
  rewrite_index(dir, [](auto& j) { j["weight_map"]["bias"] = "link.safetensors"; });
  EXPECT_NE(open_error(dir).find("outside the model folder"), std::string::npos);
}

TEST(HfModel, IndexMustAgreeWithTheShards) {
  test::TempDir tmp;
  const std::string dir = tmp / "m";
  write_toy(dir, 1500);
  const auto original = test::read_file(dir + "/model.safetensors.index.json");
  rewrite_index(dir, [](auto& j) { j["weight_map"].erase("bias"); });
  EXPECT_NE(open_error(dir).find("not listed in the index"), std::string::npos);
  std::ofstream(dir + "/model.safetensors.index.json") << original;
  rewrite_index(dir, [](auto& j) { j["weight_map"]["ghost"] = "model-00001-of-00002.safetensors"; });
  EXPECT_NE(open_error(dir).find("does not contain it"), std::string::npos);
  std::ofstream(dir + "/model.safetensors.index.json") << original;
  rewrite_index(dir, [](auto& j) { j["weight_map"]["bias"] = "model-09999.safetensors"; });
  EXPECT_NE(open_error(dir).find("does not exist"), std::string::npos);
}

}  // namespace
}  // namespace ms::io
