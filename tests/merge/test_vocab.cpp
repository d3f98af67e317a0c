// Vocabularies and heads against mergekit 0.1.5 itself: every case of tests/fixtures/vocab/
// (made by make_vocab_fixtures.py: mergekit-yaml on a tiny Llama family whose fine-tunes add
// tokens, at the end and padded, and tie or untie the head) merged by `merge` and compared
// tensor by tensor (≤ 1e-6 in float32), with config.json's vocab_size and tie_word_embeddings and
// the union tokenizer's token order. Cases mergekit refuses, and its tokenizer block, are refused.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/test_util.hpp"
#include "mergesweep/io/family_check.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/merge/merge_streaming.hpp"
#include "mergesweep/merge/mergekit_config.hpp"
#include "mergesweep/merge/resident.hpp"

namespace ms::merge {
namespace {

using json = nlohmann::json;

std::string fixtures() { return test::source_path("tests/fixtures/vocab"); }

// The case's mergekit YAML with its model paths made absolute (they are relative to fixtures/).
StreamingJob job_of(const std::string& name, const test::TempDir& dir) {
  std::string text = io::read_text_file(fixtures() + "/out/" + name + "/config.yaml");
  for (std::size_t at = 0; (at = text.find("models/", at)) != std::string::npos;) {
    text.insert(at, fixtures() + "/");
    at += fixtures().size() + 8;
  }
  const std::string yaml = dir / (name + ".yaml");
  io::write_text_file(yaml, text);
  StreamingJob job = read_mergekit_config(yaml);
  job.out_dir = dir / name;
  return job;
}

std::vector<std::pair<std::int64_t, std::string>> added_tokens(const std::string& tokenizer_json) {
  std::vector<std::pair<std::int64_t, std::string>> out;
  const json doc = json::parse(io::read_text_file(tokenizer_json));  // outlives the loop over its member
  for (const auto& a : doc["added_tokens"]) out.emplace_back(a["id"].get<std::int64_t>(), a["content"].get<std::string>());
  return out;
}

class VocabParity : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabParity, MatchesMergekit) {
  const std::string name = GetParam();
  test::TempDir dir;
  const StreamingJob job = job_of(name, dir);
  merge_streaming(job);
  const std::string ref = fixtures() + "/out/" + name;
  const io::HfModel want = io::HfModel::open(ref), got = io::HfModel::open(job.out_dir);
  ASSERT_EQ(got.tensor_names(), want.tensor_names()) << name;
  for (const auto& t : want.tensor_names()) {
    const at::Tensor a = want.tensor(t).to(at::kDouble), b = got.tensor(t).to(at::kDouble);
    ASSERT_EQ(a.sizes(), b.sizes()) << name << " " << t;
    EXPECT_LE((a - b).abs().max().item<double>(), 1e-6) << name << " " << t;
  }
  const json wc = json::parse(io::read_text_file(ref + "/config.json"));
  const json gc = json::parse(io::read_text_file(job.out_dir + "/config.json"));
  EXPECT_EQ(gc["vocab_size"], wc["vocab_size"]) << name;
  // mergekit keeps the base's tie_word_embeddings even when it writes an lm_head; the written
  // model is untied either way (transformers loads the stored head), and mergesweep says so.
  const bool has_head = got.find("lm_head.weight") != nullptr;
  EXPECT_EQ(gc.value("tie_word_embeddings", false), has_head ? false : wc.value("tie_word_embeddings", false)) << name;
  if (io::path_exists(ref + "/tokenizer.json")) {
    EXPECT_EQ(added_tokens(job.out_dir + "/tokenizer.json"), added_tokens(ref + "/tokenizer.json")) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Mergekit, VocabParity,
    ::testing::Values("ta_base_added", "ta_base_padded", "ta_src_ft_added", "ta_src_ft_padded", "ta_union_added",
                      "ta_union_added_padded", "linear_base_added", "linear_src_ft_added", "linear_union_added",
                      "linear_union_added_padded", "linear_union_nobase", "tied_ta_basetied_ftuntied",
                      "tied_linear_basetied_ftuntied", "tied_ta_baseuntied_fttied", "tied_linear_baseuntied_fttied",
                      "tied_ta_alltied", "tied_ta_union_basetied_ftadded"));

TEST(VocabRefusals, WhatMergekitRefusesOrMergesweepDoesNotDoIsRefusedByName) {
  test::TempDir dir;
  // No tokenizer_source and vocabularies that differ: mergekit refuses too.
  std::string e = test::error_of([&] { merge_streaming(job_of("ta_unset_added", dir)); });
  EXPECT_NE(e.find("shape [43, 16] differs from the base's [40, 16]"), std::string::npos) << e;
  EXPECT_NE(e.find("tokenizer_source: base, union or a model"), std::string::npos) << e;
  for (const char* name : {"ta_union_pad8", "ta_union_tokens"}) {
    e = test::error_of([&] { job_of(name, dir); });
    EXPECT_NE(e.find("tokenizer: line"), std::string::npos) << e;
    EXPECT_NE(e.find("tokenizer block (tokens, pad_to_multiple_of) is not supported"), std::string::npos) << e;
  }
  EXPECT_FALSE(io::path_exists(dir / "ta_unset_added"));
}

// A tokenizer naming a token that has no embedding row does not belong to its weights.
TEST(VocabRefusals, ATokenizerLargerThanItsEmbeddingIsRefused) {
  test::TempDir dir;
  const std::string bad = dir / "ft_bad";
  std::filesystem::copy(fixtures() + "/models/ft_added", bad);
  std::filesystem::copy_file(fixtures() + "/models/ft_padded/tokenizer.json", bad + "/tokenizer.json",
                             std::filesystem::copy_options::overwrite_existing);
  json tok = json::parse(io::read_text_file(bad + "/tokenizer.json"));
  tok["added_tokens"].push_back({{"id", 60}, {"content", "<|far|>"}, {"special", true}});
  io::write_text_file(bad + "/tokenizer.json", tok.dump());
  io::VocabChoice c;
  c.source = io::VocabSource::Union;
  const std::string e = test::error_of([&] { io::check_family(fixtures() + "/models/base", {bad}, {"models[0].model"}, c); });
  EXPECT_NE(e.find("ft_bad/tokenizer.json: '<|far|>': token id 60 has no row"), std::string::npos) << e;
  EXPECT_NE(e.find("43 rows"), std::string::npos) << e;
}

// A layer stack (passthrough over slices) takes the embedding from the first slice's model and the
// head from the last's: two vocabularies are refused by name, and a tied last model under an
// untied first one gives its embedding as the head (left out, transformers would start the head
// from random values).
StreamingJob stack_of(const test::TempDir& dir, const std::string& first, const std::string& last) {
  const std::string yaml = dir / (first + "-" + last + ".yaml");
  io::write_text_file(yaml, "merge_method: passthrough\nslices:\n- sources:\n  - model: " + fixtures() + "/models/" +
                                first + "\n    layer_range: [0, 2]\n- sources:\n  - model: " + fixtures() +
                                "/models/" + last + "\n    layer_range: [1, 2]\n");
  StreamingJob job = read_mergekit_config(yaml);
  job.out_dir = dir / (first + "-" + last);
  return job;
}

TEST(VocabStack, AStackOverTwoVocabulariesIsRefusedByName) {
  test::TempDir dir;
  const std::string e = test::error_of([&] { merge_streaming(stack_of(dir, "base", "ft_added")); });
  EXPECT_NE(e.find("ft_added: slices[1]: its head has 43 rows where"), std::string::npos) << e;
  EXPECT_NE(e.find("embedding has 40"), std::string::npos) << e;
  EXPECT_FALSE(io::path_exists(dir / "base-ft_added"));
}

TEST(VocabStack, ATiedLastModelGivesItsEmbeddingAsTheHead) {
  test::TempDir dir;
  const StreamingJob job = stack_of(dir, "base", "ft_tied");
  merge_streaming(job);
  const io::HfModel out = io::HfModel::open(job.out_dir), tied = io::HfModel::open(fixtures() + "/models/ft_tied");
  const io::HfModel first = io::HfModel::open(fixtures() + "/models/base");
  ASSERT_NE(out.find("lm_head.weight"), nullptr);
  EXPECT_TRUE(out.tensor("lm_head.weight").equal(tied.tensor("model.embed_tokens.weight")));
  EXPECT_TRUE(out.tensor("model.embed_tokens.weight").equal(first.tensor("model.embed_tokens.weight")));
  EXPECT_FALSE(nlohmann::json::parse(out.config()->text)["tie_word_embeddings"].get<bool>());
  // The same model first and last: its own head, as stored.
  const StreamingJob same = stack_of(dir, "base", "base");
  merge_streaming(same);
  EXPECT_TRUE(io::HfModel::open(same.out_dir).tensor("lm_head.weight").equal(first.tensor("lm_head.weight")));
}

// The sweep's path: residents aligned to the base's vocabulary (vocabulary: base, the default)
// give mergekit's tokenizer_source: base numbers, for both the fused and the generic kernels.
TEST(VocabResident, TheSweepAlignsToTheBasesVocabularyAsMergekitDoes) {
  const std::string m = fixtures() + "/models/";
  for (const bool fast : {true, false}) {
    ResidentOptions ro;
    ro.vocab.source = io::VocabSource::Base;
    ro.vocab.keep_base_rows = true;
    ro.cpu_fast_paths = fast;
    const ResidentModels held(m + "base", {m + "ft_same", m + "ft_added"}, {}, ro);
    MergeRequest r;
    r.method = find_method("task_arithmetic");
    r.params = validate_params(r.method->params, {}, "", "");
    r.members = {{"ft_same", 0, 0.6, 1.0}, {"ft_added", 1, 0.4, 1.0}};
    std::map<std::string, at::Tensor> out;
    LocalReducer local;
    held.merge(r, out, local);
    const io::HfModel want = io::HfModel::open(fixtures() + "/out/ta_base_added");
    for (const auto& t : want.tensor_names())
      EXPECT_LE((out.at(t).to(at::kDouble) - want.tensor(t).to(at::kDouble)).abs().max().item<double>(), 1e-6)
          << t << (fast ? " fused" : " generic");
  }
}

TEST(VocabResident, ThePlanShowsTheAlignedCheckpointAndExactRefusesIt) {
  test::TempDir dir;
  const std::string m = fixtures() + "/models/";
  const std::string spec = "base: " + m + "base\ncheckpoints: [" + m + "ft_same, " + m + "ft_added]\n" +
                           "subsets: {sizes: [2]}\nmethods: [{method: task_arithmetic}]\noutput: " + (dir / "o.h5") + "\n";
  io::write_text_file(dir / "s.yaml", spec);
  auto r = test::run_cli("sweep " + (dir / "s.yaml") + " --plan");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("vocabulary aligned by token to the merged 40 rows"), std::string::npos) << r.out;
  io::write_text_file(dir / "x.yaml", spec + "vocabulary: exact\n");
  r = test::run_cli("sweep " + (dir / "x.yaml") + " --plan");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("shape [43, 16] differs from the base's [40, 16]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("checkpoints[1]"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ms::merge
