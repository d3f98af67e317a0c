// The decoder forward against transformers (fixtures from make_fixtures.py: tiny random models
// of each architecture with transformers' own float32 logits and hidden states), plus the KV
// cache, bf16, autograd through the forward, and the errors for bad models and inputs.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not via ATen.h in torch 2.x)
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <thread>
#include <nlohmann/json.hpp>

#include "common/test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/io/safetensors_file.hpp"
#include "mergesweep/model/decoder.hpp"

namespace {

using ms::model::Decoder;
using ms::model::ForwardOptions;
using ms::model::KvCache;

const std::vector<std::string> kArchs = {"llama3_tied", "llama_untied", "mistral", "qwen2", "qwen3"};
constexpr int kCases = 4;  // cases per fixture (make_fixtures.py CASES)

std::string fixture(const std::string& name) { return ms::test::source_path("tests/fixtures/model/" + name); }

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

struct Expected {
  std::shared_ptr<const ms::io::SafetensorsFile> file;
  at::Tensor get(const std::string& name) const { return file->tensor(name); }
};

Expected expected(const std::string& arch) {
  return {ms::io::SafetensorsFile::open(fixture(arch) + "/expected.safetensors")};
}

// Every tensor of a fixture folder, loaded (copied) into a map: for tests that edit or drop some.
std::map<std::string, at::Tensor> all_tensors(const std::string& arch) {
  const auto model = ms::io::HfModel::open(fixture(arch));
  std::map<std::string, at::Tensor> out;
  for (const auto& n : model.tensor_names()) out[n] = model.tensor(n).clone();
  return out;
}

Decoder::TensorGetter getter(const std::map<std::string, at::Tensor>& tensors) {
  return [&tensors](const std::string& name) {
    auto it = tensors.find(name);
    return it == tensors.end() ? at::Tensor() : it->second;
  };
}

using ms::test::error_of;

// ------------------------------------------------------------------------------------ parity

class Parity : public ::testing::TestWithParam<std::string> {};

TEST_P(Parity, LogitsAndHiddenStatesMatchTransformersFloat32) {
  const std::string arch = GetParam();
  const auto model = Decoder::load(fixture(arch), at::kFloat);
  const auto exp = expected(arch);
  const std::int64_t L = model->config().num_hidden_layers;
  at::NoGradGuard no_grad;
  double worst_logits = 0, worst_hidden = 0;
  for (int c = 0; c < kCases; ++c) {
    const std::string cs = std::to_string(c);
    const at::Tensor ids = exp.get("ids_" + cs);
    std::vector<at::Tensor> hidden;
    ForwardOptions opts;
    opts.hidden = &hidden;
    const at::Tensor out = model->forward(ids, opts);
    const at::Tensor logits = model->logits(out);
    const at::Tensor want = exp.get("logits_" + cs);
    ASSERT_EQ(logits.sizes(), want.sizes()) << arch << " case " << c;
    ASSERT_EQ(static_cast<std::int64_t>(hidden.size()), L + 1) << arch;
    const double d = max_abs_diff(logits, want);
    EXPECT_LE(d, 1e-4) << arch << " case " << c << " logits maxdiff " << d;
    worst_logits = std::max(worst_logits, d);
    for (std::int64_t i = 0; i <= L; ++i) {
      const at::Tensor h_want = exp.get("hidden_" + cs + "_" + std::to_string(i));
      ASSERT_EQ(hidden[i].sizes(), h_want.sizes());
      const double dh = max_abs_diff(hidden[i], h_want);
      EXPECT_LE(dh, 1e-4) << arch << " case " << c << " hidden " << i << " maxdiff " << dh;
      worst_hidden = std::max(worst_hidden, dh);
    }
    EXPECT_TRUE(hidden[L].equal(out)) << "the last hidden state is the forward's output";
  }
  std::printf("[ parity ] %-13s max|logits diff| %.3g  max|hidden diff| %.3g\n", arch.c_str(), worst_logits,
              worst_hidden);
}

// bf16 compute follows transformers' bf16 forward (weights cast once, RMSNorm statistics and
// softmax in float32).
TEST_P(Parity, Bfloat16FollowsTransformersBfloat16) {
  const std::string arch = GetParam();
  const auto model = Decoder::load(fixture(arch), at::kBFloat16);
  EXPECT_EQ(model->dtype(), at::kBFloat16);
  const auto exp = expected(arch);
  at::NoGradGuard no_grad;
  const at::Tensor want32 = exp.get("logits_3"), want16 = exp.get("logits_bf16_3");
  const at::Tensor got = model->logits(model->forward(exp.get("ids_3")));
  EXPECT_EQ(got.scalar_type(), at::kBFloat16);
  auto mean_diff = [](const at::Tensor& a, const at::Tensor& b) {
    return (a.to(at::kDouble) - b.to(at::kDouble)).abs().mean().item<double>();
  };
  const double scale = want32.abs().max().item<double>();
  const double ulp = std::ldexp(1.0, static_cast<int>(std::floor(std::log2(scale))) - 7);  // bf16 step at max|logit|
  const double d16 = max_abs_diff(got, want16), d32 = max_abs_diff(got, want32);
  const double m16 = mean_diff(got, want16), m32 = mean_diff(got, want32), ref_gap = mean_diff(want16, want32);
  // Elementwise the two bf16 forwards differ by bf16 rounding (the gemm kernels differ between
  // libtorch builds), so: within two bf16 steps everywhere, and on average clearly nearer to
  // transformers' bf16 than transformers' bf16 is to float32.
  EXPECT_LE(d16, 2 * ulp) << arch << " bf16 vs transformers bf16 maxdiff " << d16;
  EXPECT_LE(m16, 0.75 * ref_gap) << arch << " mean diff to transformers bf16 " << m16 << ", its gap to f32 " << ref_gap;
  EXPECT_LE(d32, 0.05 * scale) << arch << " bf16 vs float32 maxdiff " << d32 << " of logits up to " << scale;
  std::printf("[ bf16   ] %-13s max|diff| vs transformers bf16 %.3g, vs float32 %.3g; mean|diff| %.3g, %.3g "
              "(transformers bf16 vs f32 %.3g)\n", arch.c_str(), d16, d32, m16, m32, ref_gap);
}

INSTANTIATE_TEST_SUITE_P(Archs, Parity, ::testing::ValuesIn(kArchs));

// ------------------------------------------------------------------------------------ kv cache

class Cache : public ::testing::TestWithParam<std::string> {};

TEST_P(Cache, ContextThenContinuationEqualsFullSequence) {
  const std::string arch = GetParam();
  const auto model = Decoder::load(fixture(arch), at::kFloat);
  const auto exp = expected(arch);
  at::NoGradGuard no_grad;
  const at::Tensor ids = exp.get("ids_3");  // [2, 40]; mistral's window is 6, so the split crosses it
  const at::Tensor full = model->logits(model->forward(ids));
  for (std::int64_t split : {1, 9, 38}) {
    KvCache cache;
    ForwardOptions opts;
    opts.cache = &cache;
    const at::Tensor a = model->logits(model->forward(ids.narrow(1, 0, split), opts));
    EXPECT_EQ(cache.length(), split);
    // The rest in two pieces: a multi-position step, then single positions.
    const std::int64_t mid = split + (40 - split) / 2;
    std::vector<at::Tensor> parts = {a};
    if (mid > split) parts.push_back(model->logits(model->forward(ids.narrow(1, split, mid - split), opts)));
    for (std::int64_t t = mid; t < 40; ++t) parts.push_back(model->logits(model->forward(ids.narrow(1, t, 1), opts)));
    EXPECT_EQ(cache.length(), 40);
    const double d = max_abs_diff(at::cat(parts, 1), full);
    EXPECT_LE(d, 1e-5) << arch << " split " << split;
  }
}

TEST_P(Cache, ExpandedContextScoresSeveralContinuations) {
  const std::string arch = GetParam();
  const auto model = Decoder::load(fixture(arch), at::kFloat);
  at::NoGradGuard no_grad;
  const at::Tensor context = at::arange(3, 15, at::kLong).unsqueeze(0);            // [1, 12]
  const at::Tensor conts = at::tensor({5, 6, 7, 50, 60, 70}, at::kLong).view({2, 3});  // two continuations
  KvCache cache;
  ForwardOptions opts;
  opts.cache = &cache;
  model->forward(context, opts);
  KvCache two = cache.expand(2);
  EXPECT_EQ(two.length(), 12);
  ForwardOptions opts2;
  opts2.cache = &two;
  const at::Tensor got = model->logits(model->forward(conts, opts2));  // [2, 3, V]
  for (int j = 0; j < 2; ++j) {
    const at::Tensor full = model->logits(model->forward(at::cat({context, conts.narrow(0, j, 1)}, 1)));
    EXPECT_LE(max_abs_diff(got.narrow(0, j, 1), full.narrow(1, 12, 3)), 1e-5) << arch << " continuation " << j;
  }
  EXPECT_EQ(cache.length(), 12) << "expanding leaves the original cache as it was";
}

INSTANTIATE_TEST_SUITE_P(Archs, Cache, ::testing::ValuesIn(kArchs));

// ------------------------------------------------------------------------------------ config forms

// transformers 4 writes rope_theta and rope_scaling at the top level, transformers 5 nests them in
// rope_parameters; both must give the same model.
TEST(Config, RopeScalingAndRopeParametersFormsAgree) {
  const std::string path = fixture("llama3_tied") + "/config.json";
  auto doc = nlohmann::json::parse(ms::test::read_file(path));
  auto params = doc["rope_parameters"];
  doc.erase("rope_parameters");
  doc["rope_theta"] = params["rope_theta"];
  params.erase("rope_theta");
  params.erase("rope_type");
  params["type"] = "llama3";  // the older key name
  doc["rope_scaling"] = params;
  const auto old_cfg = ms::io::parse_model_config(doc.dump(), path);
  const auto tensors = all_tensors("llama3_tied");
  const auto old_model = Decoder::create(old_cfg, getter(tensors), at::kFloat, "old-form");
  const auto new_model = Decoder::load(fixture("llama3_tied"), at::kFloat);
  at::NoGradGuard no_grad;
  const at::Tensor ids = expected("llama3_tied").get("ids_3");
  EXPECT_TRUE(old_model->logits(old_model->forward(ids)).equal(new_model->logits(new_model->forward(ids))));
  // And dropping the scaling changes the logits (the test above is not vacuous).
  doc.erase("rope_scaling");
  const auto plain = Decoder::create(ms::io::parse_model_config(doc.dump(), path), getter(tensors), at::kFloat, "x");
  EXPECT_GT(max_abs_diff(plain->logits(plain->forward(ids)), new_model->logits(new_model->forward(ids))), 1e-3);
}

// Mistral's window (6 in the fixture) shapes the logits of the 40-token case: without it they
// move away from transformers' (so the parity above does test the window).
TEST(Config, MistralSlidingWindowIsApplied) {
  const std::string path = fixture("mistral") + "/config.json";
  auto doc = nlohmann::json::parse(ms::test::read_file(path));
  ASSERT_EQ(doc["sliding_window"], 6);
  doc["sliding_window"] = nullptr;
  const auto tensors = all_tensors("mistral");
  const auto no_window = Decoder::create(ms::io::parse_model_config(doc.dump(), path), getter(tensors), at::kFloat, "x");
  at::NoGradGuard no_grad;
  const auto exp = expected("mistral");
  const at::Tensor got = no_window->logits(no_window->forward(exp.get("ids_3")));
  EXPECT_GT(max_abs_diff(got, exp.get("logits_3")), 1e-3);
  // The first 6 positions see the same keys either way.
  EXPECT_LE(max_abs_diff(got.narrow(1, 0, 6), exp.get("logits_3").narrow(1, 0, 6)), 1e-4);
}

TEST(Dtypes, UnsupportedComputeDtypeIsRejected) {
  const std::string msg = error_of([] { Decoder::load(fixture("qwen3"), at::kDouble); });
  EXPECT_NE(msg.find("float32, bfloat16 or float16"), std::string::npos) << msg;
}

// float16 compute runs too (same float32 norm and softmax as bf16).
TEST(Dtypes, Float16RunsAndStaysClose) {
  try {
    at::mm(at::ones({2, 2}, at::kHalf), at::ones({2, 2}, at::kHalf));
  } catch (const c10::Error&) {
    GTEST_SKIP() << "this libtorch has no float16 matmul on CPU (torch < 2.x)";
  }
  const auto model = Decoder::load(fixture("qwen3"), at::kHalf);
  at::NoGradGuard no_grad;
  const auto exp = expected("qwen3");
  const at::Tensor got = model->logits(model->forward(exp.get("ids_3")));
  EXPECT_EQ(got.scalar_type(), at::kHalf);
  const at::Tensor want = exp.get("logits_3");
  EXPECT_LE(max_abs_diff(got, want), 0.01 * want.abs().max().item<double>());
}

// One Decoder serves concurrent callers (each with its own cache): no state is shared but the
// RoPE table, which grows under a lock.
TEST(Threads, ConcurrentForwardsAgreeWithSerialOnes) {
  const auto model = Decoder::load(fixture("llama3_tied"), at::kFloat);
  const auto exp = expected("llama3_tied");
  std::vector<at::Tensor> inputs, serial(8), parallel(8);
  for (int i = 0; i < 8; ++i) inputs.push_back(exp.get("ids_3").narrow(1, 0, 5 + 4 * i).contiguous());
  {
    at::NoGradGuard no_grad;
    for (int i = 0; i < 8; ++i) serial[i] = model->logits(model->forward(inputs[i]));
  }
  const auto fresh = Decoder::load(fixture("llama3_tied"), at::kFloat);  // its RoPE table starts empty
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      at::NoGradGuard no_grad;  // grad mode is per thread
      KvCache cache;
      ForwardOptions opts;
      opts.cache = &cache;
      const std::int64_t n = inputs[i].size(1);
      const at::Tensor a = fresh->logits(fresh->forward(inputs[i].narrow(1, 0, n - 2), opts));
      const at::Tensor b = fresh->logits(fresh->forward(inputs[i].narrow(1, n - 2, 2), opts));
      parallel[i] = at::cat({a, b}, 1);
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) EXPECT_LE(max_abs_diff(parallel[i], serial[i]), 1e-5) << "input " << i;
}

// ------------------------------------------------------------------------------------ autograd

// The testbed trains through this forward: every parameter gets a gradient, and one SGD step on
// the loss lowers it.
TEST(Autograd, EveryParameterGetsAGradient) {
  for (const std::string arch : {"llama3_tied", "qwen2", "qwen3"}) {
    auto tensors = all_tensors(arch);
    for (auto& [name, t] : tensors) t = t.detach().clone().set_requires_grad(true);
    const auto cfg = ms::io::read_model_config(fixture(arch) + "/config.json");
    const auto model = Decoder::create(cfg, getter(tensors), at::kFloat, arch);
    const at::Tensor ids = expected(arch).get("ids_2");  // [2, 11]
    auto loss_of = [&] {
      const at::Tensor logits = model->logits(model->forward(ids.narrow(1, 0, 10)));
      return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), ids.narrow(1, 1, 10).reshape({-1}));
    };
    const at::Tensor loss = loss_of();
    loss.backward();
    const auto params = model->named_parameters();
    std::size_t expected_count = tensors.size() - (cfg.tie_word_embeddings && tensors.count("lm_head.weight") ? 1 : 0);
    EXPECT_EQ(params.size(), expected_count) << arch;
    for (const auto& [name, p] : params) {
      ASSERT_TRUE(p.grad().defined()) << arch << " " << name << " has no gradient";
      EXPECT_TRUE(at::isfinite(p.grad()).all().item<bool>()) << arch << " " << name;
      EXPECT_GT(p.grad().abs().max().item<double>(), 0.0) << arch << " " << name;
      EXPECT_TRUE(p.is_same(tensors.at(name))) << arch << " " << name << " is the caller's tensor, not a copy";
    }
    {
      at::NoGradGuard no_grad;
      for (const auto& [name, p] : params) p.sub_(p.grad() * 0.05);
    }
    EXPECT_LT(loss_of().item<double>(), loss.item<double>()) << arch;
  }
}

// ------------------------------------------------------------------------------------ errors

TEST(Errors, UnsupportedModelTypeNamesItAndTheSource) {
  auto cfg = ms::io::read_model_config(fixture("llama_untied") + "/config.json");
  cfg.model_type = "gpt2";
  const auto tensors = all_tensors("llama_untied");
  const std::string msg = error_of([&] { Decoder::create(cfg, getter(tensors), at::kFloat, "my-source"); });
  EXPECT_NE(msg.find("my-source"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model_type"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gpt2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("qwen3"), std::string::npos) << "lists the supported types: " << msg;
}

TEST(Errors, MissingTensorNamesItAndTheSource) {
  for (const std::string drop : {"model.layers.1.mlp.up_proj.weight", "lm_head.weight", "model.norm.weight"}) {
    auto tensors = all_tensors("llama_untied");
    tensors.erase(drop);
    const auto cfg = ms::io::read_model_config(fixture("llama_untied") + "/config.json");
    const std::string msg = error_of([&] { Decoder::create(cfg, getter(tensors), at::kFloat, "src-x"); });
    EXPECT_NE(msg.find("src-x"), std::string::npos) << msg;
    EXPECT_NE(msg.find(drop), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  }
  // qwen2's q/k/v biases and qwen3's q/k norms are required too.
  for (const auto& [arch, drop] : {std::pair<std::string, std::string>{"qwen2", "model.layers.0.self_attn.k_proj.bias"},
                                   {"qwen3", "model.layers.1.self_attn.q_norm.weight"}}) {
    auto tensors = all_tensors(arch);
    tensors.erase(drop);
    const auto cfg = ms::io::read_model_config(fixture(arch) + "/config.json");
    const std::string msg = error_of([&] { Decoder::create(cfg, getter(tensors), at::kFloat, arch); });
    EXPECT_NE(msg.find(drop), std::string::npos) << msg;
  }
}

TEST(Errors, WrongShapeNamesTensorAndShapes) {
  auto tensors = all_tensors("mistral");
  tensors["model.layers.0.self_attn.k_proj.weight"] = at::zeros({64, 64});
  const auto cfg = ms::io::read_model_config(fixture("mistral") + "/config.json");
  const std::string msg = error_of([&] { Decoder::create(cfg, getter(tensors), at::kFloat, "m"); });
  EXPECT_NE(msg.find("model.layers.0.self_attn.k_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[64, 64]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[32, 64]"), std::string::npos) << msg;
}

TEST(Errors, BadModelFoldersFromTheBadInputsCorpus) {
  const std::string dir = ms::test::source_path("tests/bad-inputs/inputs/model/");
  std::string msg = error_of([&] { Decoder::load(dir + "unsupported_model_type", at::kFloat); });
  EXPECT_NE(msg.find("unsupported_model_type"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gpt_neox"), std::string::npos) << msg;
  msg = error_of([&] { Decoder::load(dir + "missing_tensor", at::kFloat); });
  EXPECT_NE(msg.find("missing_tensor"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.layers.0.self_attn.v_proj.weight"), std::string::npos) << msg;
}

TEST(Errors, TokenIdsOutOfRange) {
  const auto model = Decoder::load(fixture("qwen2"), at::kFloat);
  at::NoGradGuard no_grad;
  std::string msg = error_of([&] { model->forward(at::tensor({1, 2, 101}, at::kLong).view({1, 3})); });
  EXPECT_NE(msg.find("101"), std::string::npos) << msg;
  EXPECT_NE(msg.find("vocab_size"), std::string::npos) << msg;
  EXPECT_NE(msg.find("qwen2"), std::string::npos) << "names the model: " << msg;
  msg = error_of([&] { model->forward(at::tensor({1, -1, 5}, at::kLong).view({1, 3})); });
  EXPECT_NE(msg.find("-1"), std::string::npos) << msg;
  msg = error_of([&] { model->forward(at::tensor({1, 2}, at::kInt).view({1, 2})); });
  EXPECT_NE(msg.find("int64"), std::string::npos) << msg;
  EXPECT_NO_THROW(model->forward(at::tensor({0, 100}, at::kLong).view({1, 2})));
}

TEST(Errors, SequenceLongerThanMaxPositionEmbeddings) {
  const auto model = Decoder::load(fixture("qwen3"), at::kFloat);
  ASSERT_EQ(model->config().max_position_embeddings, 64);
  at::NoGradGuard no_grad;
  EXPECT_NO_THROW(model->forward(at::zeros({1, 64}, at::kLong)));
  std::string msg = error_of([&] { model->forward(at::zeros({1, 65}, at::kLong)); });
  EXPECT_NE(msg.find("max_position_embeddings 64"), std::string::npos) << msg;
  // The cache's positions count too.
  KvCache cache;
  ForwardOptions opts;
  opts.cache = &cache;
  model->forward(at::zeros({1, 60}, at::kLong), opts);
  msg = error_of([&] { model->forward(at::zeros({1, 5}, at::kLong), opts); });
  EXPECT_NE(msg.find("65 positions"), std::string::npos) << msg;
}

}  // namespace
