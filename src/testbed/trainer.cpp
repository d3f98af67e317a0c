#include "trainer.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not via ATen.h in torch 2.x)
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>
#include <map>
#include "mergesweep/io/hf_config.hpp"

#include "mergesweep/core/error.hpp"
#include "mergesweep/model/decoder.hpp"
#include "mergesweep/testbed/tasks.hpp"
#include "rng.hpp"

namespace ms::testbed {
namespace {

at::Generator generator_for(std::uint64_t seed, const std::string& purpose) {
  Rng r = Rng::for_purpose(seed, purpose);
  return at::make_generator<at::CPUGeneratorImpl>(r.next());
}

}  // namespace

std::string llama_config_text(const TestbedOptions& o, std::int64_t vocab) {
  io::LlamaConfigFields f;
  f.hidden = o.hidden;
  f.intermediate = o.intermediate;
  f.layers = o.layers;
  f.heads = o.heads;
  f.kv_heads = o.kv_heads;
  f.vocab = vocab;
  f.max_positions = o.max_positions;
  f.dtype = o.dtype;
  f.bos = CharTokenizer::kBos;
  f.eos = CharTokenizer::kEos;
  f.pad = CharTokenizer::kPad;
  f.head_dim = true;
  f.mlp_bias_and_init = true;
  return io::llama_config_json(f);
}

Params init_params(const io::ModelConfig& cfg, std::uint64_t seed) {
  const std::int64_t h = cfg.hidden_size, f = cfg.intermediate_size, v = cfg.vocab_size;
  const std::int64_t hd = cfg.head_dim, q = cfg.num_attention_heads * hd, kv = cfg.num_key_value_heads * hd;
  const double std_out = 0.02 / std::sqrt(2.0 * static_cast<double>(cfg.num_hidden_layers));
  Params p;
  auto mat = [&](const std::string& name, std::int64_t rows, std::int64_t cols, double std) {
    auto gen = generator_for(seed, "init/" + name);
    p.emplace_back(name, at::randn({rows, cols}, gen, at::kFloat) * std);
  };
  auto norm = [&](const std::string& name) { p.emplace_back(name, at::ones({h}, at::kFloat)); };
  mat("model.embed_tokens.weight", v, h, 0.02);
  for (std::int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const std::string b = "model.layers." + std::to_string(l) + ".";
    norm(b + "input_layernorm.weight");
    mat(b + "self_attn.q_proj.weight", q, h, 0.02);
    mat(b + "self_attn.k_proj.weight", kv, h, 0.02);
    mat(b + "self_attn.v_proj.weight", kv, h, 0.02);
    mat(b + "self_attn.o_proj.weight", h, q, std_out);
    norm(b + "post_attention_layernorm.weight");
    mat(b + "mlp.gate_proj.weight", f, h, 0.02);
    mat(b + "mlp.up_proj.weight", f, h, 0.02);
    mat(b + "mlp.down_proj.weight", h, f, std_out);
  }
  norm("model.norm.weight");
  mat("lm_head.weight", v, h, 0.02);
  return p;
}

Params clone_params(const Params& p) {
  Params out;
  for (const auto& [n, t] : p) out.emplace_back(n, t.detach().clone());
  return out;
}

BatchSource::BatchSource(const CharTokenizer& tok, const std::vector<double>& mixture,
                         std::vector<std::set<std::string>> held_out, std::uint64_t seed, std::string purpose)
    : tok_(tok), held_out_(std::move(held_out)), seed_(seed), purpose_(std::move(purpose)) {
  double total = 0;
  for (double w : mixture) total += w;
  double acc = 0;
  for (double w : mixture) cumulative_.push_back(acc += w / total);
}

Batch BatchSource::batch(int step, int size) const {
  Rng rng = Rng::for_purpose(seed_, purpose_, static_cast<std::uint64_t>(step));
  const auto& fams = task_families();
  std::vector<std::vector<std::int32_t>> seqs;
  std::vector<std::size_t> answer_start;
  std::size_t longest = 0;
  for (int b = 0; b < size; ++b) {
    const double u = rng.uniform();
    std::size_t f = 0;
    while (f + 1 < cumulative_.size() && u >= cumulative_[f]) ++f;
    Example e;
    do e = fams[f].generate(rng); while (held_out_[f].count(e.prompt) != 0);
    auto ids = tok_.encode(e.prompt);
    answer_start.push_back(ids.size());
    const auto cont = tok_.encode(" " + e.answer);
    ids.insert(ids.end(), cont.begin(), cont.end());
    // A generated answer must end: the EOS id follows it and is learnt like the answer's tokens.
    if (fams[f].generation) ids.push_back(CharTokenizer::kEos);
    longest = std::max(longest, ids.size());
    seqs.push_back(std::move(ids));
  }
  // Inputs are seq[:-1], targets seq[1:]; the loss covers the continuation " answer" (and the EOS
  // of a generation example) only, so training optimises exactly what the packs measure.
  const std::int64_t T = static_cast<std::int64_t>(longest) - 1;
  at::Tensor ids = at::full({size, T}, CharTokenizer::kPad, at::kLong);
  at::Tensor tgt = at::full({size, T}, CharTokenizer::kPad, at::kLong);
  at::Tensor mask = at::zeros({size, T}, at::kFloat);
  auto ia = ids.accessor<std::int64_t, 2>();
  auto ta = tgt.accessor<std::int64_t, 2>();
  auto ma = mask.accessor<float, 2>();
  for (int b = 0; b < size; ++b) {
    const auto& s = seqs[static_cast<std::size_t>(b)];
    for (std::size_t t = 0; t + 1 < s.size(); ++t) {
      ia[b][static_cast<std::int64_t>(t)] = s[t];
      ta[b][static_cast<std::int64_t>(t)] = s[t + 1];
      if (t + 1 >= answer_start[static_cast<std::size_t>(b)]) ma[b][static_cast<std::int64_t>(t)] = 1.0f;
    }
  }
  return {ids, tgt, mask};
}

std::unique_ptr<model::Decoder> decoder_of(const Params& params, const io::ModelConfig& cfg) {
  // The decoder takes the tensors as they are (already float32): autograd sees through it to the
  // parameters, and in-place optimiser steps on them are what its next forward uses.
  return model::Decoder::create(
      cfg,
      [&params](const std::string& name) {
        for (const auto& [n, t] : params) {
          if (n == name) return t;
        }
        return at::Tensor();
      },
      at::kFloat, "testbed");
}


at::Tensor model_logits(const Params& params, const io::ModelConfig& cfg, const at::Tensor& ids) {
  const auto dec = decoder_of(params, cfg);
  return dec->logits(dec->forward(ids));
}

double train(Params& params, const io::ModelConfig& cfg, const BatchSource& data, const TrainSpec& spec,
             const std::function<void(int, double)>& on_step) {
  for (auto& [n, t] : params) t.requires_grad_(true);
  const auto dec = decoder_of(params, cfg);
  std::vector<at::Tensor> m, v;
  for (auto& [n, t] : params) {
    m.push_back(at::zeros_like(t));
    v.push_back(at::zeros_like(t));
  }
  const double b1 = 0.9, b2 = 0.98, eps = 1e-8, clip = 1.0;
  const int warm = std::max(1, static_cast<int>(spec.warmup * spec.steps));
  double tail_loss = 0;
  int tail_n = 0;
  for (int step = 0; step < spec.steps; ++step) {
    const Batch b = data.batch(step, spec.batch);
    at::Tensor logits = dec->logits(dec->forward(b.ids));
    at::Tensor nll = -at::log_softmax(logits, -1).gather(-1, b.targets.unsqueeze(-1)).squeeze(-1);
    at::Tensor loss = (nll * b.mask).sum() / b.mask.sum();
    loss.backward();
    const double loss_v = loss.item<double>();
    at::NoGradGuard no_grad;
    // Global gradient-norm clipping, then AdamW (decoupled weight decay, none on norm weights).
    double sq = 0;
    for (auto& [n, t] : params) sq += t.grad().pow(2).sum().item<double>();
    const double scale = std::min(1.0, clip / (std::sqrt(sq) + 1e-12));
    const double pi = 3.14159265358979323846;
    const double lr = step < warm ? spec.lr * (step + 1) / warm
                                  : spec.lr * (spec.lr_floor + (1 - spec.lr_floor) * 0.5 *
                                                              (1 + std::cos(pi * (step - warm) / std::max(1, spec.steps - warm))));
    const double c1 = 1 - std::pow(b1, step + 1), c2 = 1 - std::pow(b2, step + 1);
    for (std::size_t i = 0; i < params.size(); ++i) {
      at::Tensor& t = params[i].second;
      at::Tensor g = t.grad() * scale;
      m[i].mul_(b1).add_(g, 1 - b1);
      v[i].mul_(b2).addcmul_(g, g, 1 - b2);
      if (t.dim() > 1) t.mul_(1 - lr * spec.weight_decay);
      t.addcdiv_(m[i] / c1, (v[i] / c2).sqrt_().add_(eps), -lr);
      t.mutable_grad().zero_();
    }
    if (step >= spec.steps - std::max(1, spec.steps / 10)) {
      tail_loss += loss_v;
      ++tail_n;
    }
    if (on_step) on_step(step, loss_v);
  }
  for (auto& [n, t] : params) {
    t.requires_grad_(false);
    t.mutable_grad() = at::Tensor();
  }
  return tail_n ? tail_loss / tail_n : 0;
}

}  // namespace ms::testbed
