// Linear probes trained together: P probes (each a (layer, seed) pair) as one batched linear
// model [P, classes, hidden], trained with Adam on its own shuffles and dropout draws, stopped
// early on its own dev loss. One probe is the case P = 1 (fit_probe), so there is one trainer.
//
// Gradients are written out (softmax cross-entropy: dlogits = (softmax - onehot) / batch) rather
// than taken by autograd: the same numbers without a graph per step. Determinism as in probes.cpp:
// draws from counter-based streams keyed by (seed, purpose, counter); losses summed in double in
// row order on the host; matrix products never split the summed dimension across threads.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <limits>

#include "counter_rng.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/probes.hpp"

namespace ms::eval {
namespace {

struct Splits {
  std::vector<std::int64_t> train, dev, test;
};

Splits split_rows(const ProbePack& pack) {
  Splits s;
  for (std::size_t i = 0; i < pack.sentences.size(); ++i)
    (pack.split[i] == Split::kTrain ? s.train : pack.split[i] == Split::kDev ? s.dev : s.test)
        .push_back(static_cast<std::int64_t>(i));
  if (s.train.empty() || s.dev.empty() || s.test.empty())
    fail(pack.path, "split", "a probe needs train, dev and test sentences");
  return s;
}

void check_options(const ProbePack& pack, const ProbeOptions& o) {
  if (o.batch <= 0 || o.max_epochs <= 0 || o.lr <= 0 || o.dropout < 0 || o.dropout >= 1 || o.warmup < 0 ||
      o.warmup > 1 || o.patience <= 0)
    fail(pack.path, "probe options", "need batch, max_epochs, lr, patience > 0, dropout in [0, 1), warmup in [0, 1]");
}

at::Tensor long_tensor(const std::vector<std::int64_t>& v, const at::Device& d) {
  return at::from_blob(const_cast<std::int64_t*>(v.data()), {static_cast<std::int64_t>(v.size())}, at::kLong).to(d);
}

// nn.Linear's default initialisation, U(-1/sqrt(in), 1/sqrt(in)), drawn from (seed, purpose).
at::Tensor linear_init(std::int32_t seed, const char* purpose, std::int64_t count, std::int64_t fan_in) {
  const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
  const CounterRng rng(static_cast<std::uint64_t>(seed), purpose);
  at::Tensor t = at::empty({count}, at::kFloat);
  float* p = t.data_ptr<float>();
  for (std::int64_t i = 0; i < count; ++i) p[i] = (2.0f * rng.uniform(static_cast<std::uint64_t>(i)) - 1.0f) * bound;
  return t;
}

// The probes being trained, one slot each (slots leave when their probe stops early).
struct Batch {
  std::vector<std::size_t> job;        // slot -> job index
  at::Tensor w, b, m_w, v_w, m_b, v_b;  // [P, K, H], [P, K]
  void keep(const std::vector<std::size_t>& slots, const at::Device& d) {
    std::vector<std::int64_t> idx(slots.begin(), slots.end());
    const at::Tensor sel = long_tensor(idx, d);
    for (at::Tensor* t : {&w, &b, &m_w, &v_w, &m_b, &v_b}) *t = t->index_select(0, sel);
    std::vector<std::size_t> kept;
    kept.reserve(slots.size());
    for (std::size_t s : slots) kept.push_back(job[s]);
    job = std::move(kept);
  }
};

// Per-probe mean cross-entropy over `rows` (double, row order), and argmax predictions if asked.
std::vector<double> mean_losses(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                                const std::vector<std::int64_t>& rows, const ProbePack& pack,
                                std::vector<std::vector<std::int32_t>>* pred) {
  const at::Tensor logits = at::baddbmm(b.unsqueeze(1), x, w.transpose(1, 2)).to(at::kDouble).cpu().contiguous();
  const std::int64_t P = logits.size(0), R = logits.size(1), K = logits.size(2);
  std::vector<double> out(static_cast<std::size_t>(P));
  if (pred) pred->assign(static_cast<std::size_t>(P), {});
  const double* l = logits.data_ptr<double>();
  for (std::int64_t p = 0; p < P; ++p) {
    double total = 0;
    for (std::int64_t r = 0; r < R; ++r) {
      const double* row = l + (p * R + r) * K;
      double mx = row[0];
      std::int32_t arg = 0;
      for (std::int64_t c = 1; c < K; ++c)
        if (row[c] > mx) mx = row[c], arg = static_cast<std::int32_t>(c);
      double z = 0;
      for (std::int64_t c = 0; c < K; ++c) z += std::exp(row[c] - mx);
      // z >= 1: the maximum's own term is exp(0) (K >= 2 classes; cppcheck assumes the loop may not run).
      // cppcheck-suppress invalidFunctionArg
      total += mx + std::log(z) - row[pack.labels[static_cast<std::size_t>(rows[static_cast<std::size_t>(r)])]];
      if (pred) (*pred)[static_cast<std::size_t>(p)].push_back(arg);
    }
    out[static_cast<std::size_t>(p)] = total / static_cast<double>(R);
  }
  return out;
}

class Trainer {
 public:
  Trainer(const at::Tensor& features, const ProbePack& pack, const std::vector<ProbeJob>& jobs, const ProbeOptions& o)
      : pack_(pack), jobs_(jobs), o_(o), rows_(split_rows(pack)), dev_(features.device()) {
    const std::int64_t L = features.size(0);
    n_ = features.size(1);
    h_ = features.size(2);
    k_ = static_cast<std::int64_t>(pack.label_names.size());
    flat_ = features.to(at::kFloat).contiguous().view({L * n_, h_});
    for (const auto& j : jobs)
      if (j.layer < 0 || j.layer >= L)
        fail(pack.path, "probe layer", std::to_string(j.layer) + " is outside the " + std::to_string(L) + " feature layers");
    steps_per_epoch_ = (static_cast<std::int64_t>(rows_.train.size()) + o.batch - 1) / o.batch;
    total_steps_ = steps_per_epoch_ * o.max_epochs;
    warmup_steps_ = static_cast<std::int64_t>(o.warmup * static_cast<double>(total_steps_));
  }

  std::vector<ProbeFit> run();

 private:
  // transformers' get_linear_schedule_with_warmup (what Holmes uses): linear rise over the
  // warm-up steps, then linear decay to 0 at the last step; optimizer step s uses factor(s).
  double factor(std::int64_t s) const {
    if (s < warmup_steps_) return static_cast<double>(s) / static_cast<double>(std::max<std::int64_t>(1, warmup_steps_));
    return std::max(0.0, static_cast<double>(total_steps_ - s) /
                             static_cast<double>(std::max<std::int64_t>(1, total_steps_ - warmup_steps_)));
  }
  // Rows of features for each slot's probe: [P, rows, H].
  at::Tensor gather(const Batch& bt, const std::vector<std::vector<std::int64_t>>& rows) const {
    std::vector<std::int64_t> idx;
    for (std::size_t s = 0; s < bt.job.size(); ++s)
      for (std::int64_t r : rows[s]) idx.push_back(jobs_[bt.job[s]].layer * n_ + r);
    return flat_.index_select(0, long_tensor(idx, dev_))
        .view({static_cast<std::int64_t>(bt.job.size()), static_cast<std::int64_t>(rows[0].size()), h_});
  }
  at::Tensor gather_same(const Batch& bt, const std::vector<std::int64_t>& rows) const {
    return gather(bt, std::vector<std::vector<std::int64_t>>(bt.job.size(), rows));
  }
  Batch init() const;
  void epoch(Batch& bt, std::int32_t e, std::int64_t& step) const;
  void step(Batch& bt, const std::vector<std::vector<std::int64_t>>& rows, std::int64_t step) const;

  const ProbePack& pack_;
  const std::vector<ProbeJob>& jobs_;
  const ProbeOptions& o_;
  const Splits rows_;
  const at::Device dev_;
  at::Tensor flat_;
  std::int64_t n_ = 0, h_ = 0, k_ = 0, steps_per_epoch_ = 0, total_steps_ = 0, warmup_steps_ = 0;
};

Batch Trainer::init() const {
  Batch bt;
  std::vector<at::Tensor> w, b;
  for (std::size_t j = 0; j < jobs_.size(); ++j) {
    bt.job.push_back(j);
    w.push_back(linear_init(jobs_[j].seed, "probe-weight", k_ * h_, h_).view({k_, h_}));
    b.push_back(linear_init(jobs_[j].seed, "probe-bias", k_, h_));
  }
  bt.w = at::stack(w).to(dev_);
  bt.b = at::stack(b).to(dev_);
  bt.m_w = at::zeros_like(bt.w), bt.v_w = at::zeros_like(bt.w);
  bt.m_b = at::zeros_like(bt.b), bt.v_b = at::zeros_like(bt.b);
  return bt;
}

void Trainer::step(Batch& bt, const std::vector<std::vector<std::int64_t>>& rows, std::int64_t s) const {
  const std::int64_t P = static_cast<std::int64_t>(bt.job.size()), R = static_cast<std::int64_t>(rows[0].size());
  at::Tensor x = gather(bt, rows);  // [P, R, H]
  if (o_.dropout > 0) {
    // Inverted dropout on the input features; each probe's mask drawn from (its seed, step).
    const float keep = static_cast<float>(1.0 - o_.dropout);
    at::Tensor mask = at::empty({P, R, h_}, at::kFloat);
    float* m = mask.data_ptr<float>();
    for (std::int64_t p = 0; p < P; ++p) {
      const CounterRng drop(static_cast<std::uint64_t>(jobs_[bt.job[static_cast<std::size_t>(p)]].seed), "probe-dropout",
                            static_cast<std::uint64_t>(s));
      for (std::int64_t i = 0; i < R * h_; ++i)
        m[p * R * h_ + i] = drop.uniform(static_cast<std::uint64_t>(i)) < keep ? 1.0f / keep : 0.0f;
    }
    x = x * mask.to(dev_);
  }
  std::vector<std::int64_t> y;
  for (const auto& r : rows)
    for (std::int64_t i : r) y.push_back(pack_.labels[static_cast<std::size_t>(i)]);
  const at::Tensor logits = at::baddbmm(bt.b.unsqueeze(1), x, bt.w.transpose(1, 2));  // [P, R, K]
  at::Tensor g = at::softmax(logits, 2);
  g.view({P * R, k_}).scatter_add_(1, long_tensor(y, dev_).unsqueeze(1), at::full({P * R, 1}, -1.0f, g.options()));
  g.div_(static_cast<double>(R));
  const at::Tensor gw = at::bmm(g.transpose(1, 2), x);  // [P, K, H]
  const at::Tensor gb = g.sum(1);                        // [P, K]
  const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  const double lr = o_.lr * factor(s), t = static_cast<double>(s + 1);
  const double c1 = 1.0 - std::pow(beta1, t), c2 = 1.0 - std::pow(beta2, t);
  auto adam = [&](at::Tensor& p, const at::Tensor& grad, at::Tensor& m, at::Tensor& v) {
    m.mul_(beta1).add_(grad, 1.0 - beta1);
    v.mul_(beta2).addcmul_(grad, grad, 1.0 - beta2);
    // torch.optim.Adam: p -= lr / c1 * m / (sqrt(v) / sqrt(c2) + eps)
    p.addcdiv_(m, (v.sqrt() / std::sqrt(c2)).add_(eps), -lr / c1);
  };
  adam(bt.w, gw, bt.m_w, bt.v_w);
  adam(bt.b, gb, bt.m_b, bt.v_b);
}

void Trainer::epoch(Batch& bt, std::int32_t e, std::int64_t& s) const {
  // Fisher-Yates shuffle of the training rows, each probe's draws keyed by (its seed, epoch).
  std::vector<std::vector<std::int64_t>> order;
  for (std::size_t j : bt.job) {
    std::vector<std::int64_t> o = rows_.train;
    const CounterRng shuf(static_cast<std::uint64_t>(jobs_[j].seed), "probe-shuffle", static_cast<std::uint64_t>(e));
    for (std::size_t i = o.size(); i > 1; --i) std::swap(o[i - 1], o[shuf.below(i, i)]);
    order.push_back(std::move(o));
  }
  const std::int64_t n = static_cast<std::int64_t>(rows_.train.size());
  for (std::int64_t s0 = 0; s0 < n; s0 += o_.batch, ++s) {
    const std::int64_t s1 = std::min(n, s0 + o_.batch);
    std::vector<std::vector<std::int64_t>> rows;
    rows.reserve(order.size());
    for (const auto& o : order) rows.emplace_back(o.begin() + s0, o.begin() + s1);
    step(bt, rows, s);
  }
}

std::vector<ProbeFit> Trainer::run() {
  at::NoGradGuard no_grad;
  std::vector<ProbeFit> fit(jobs_.size());
  std::vector<std::int32_t> since_best(jobs_.size(), 0);
  for (auto& f : fit) f.best_dev_loss = std::numeric_limits<double>::infinity();
  Batch bt = init();
  for (std::size_t j = 0; j < jobs_.size(); ++j) {
    fit[j].weight = bt.w[static_cast<std::int64_t>(j)].clone();
    fit[j].bias = bt.b[static_cast<std::int64_t>(j)].clone();
  }
  std::int64_t s = 0;
  for (std::int32_t e = 0; e < o_.max_epochs && !bt.job.empty(); ++e) {
    epoch(bt, e, s);
    const std::vector<double> dev = mean_losses(gather_same(bt, rows_.dev), bt.w, bt.b, rows_.dev, pack_, nullptr);
    std::vector<std::size_t> still;
    for (std::size_t slot = 0; slot < bt.job.size(); ++slot) {
      const std::size_t j = bt.job[slot];
      ++fit[j].epochs;
      if (dev[slot] < fit[j].best_dev_loss) {
        fit[j].best_dev_loss = dev[slot];
        fit[j].weight = bt.w[static_cast<std::int64_t>(slot)].clone();
        fit[j].bias = bt.b[static_cast<std::int64_t>(slot)].clone();
        since_best[j] = 0;
      } else if (++since_best[j] >= o_.patience) {
        continue;  // stopped early: its best checkpoint is final
      }
      still.push_back(slot);
    }
    if (still.size() != bt.job.size()) bt.keep(still, dev_);
  }
  // Test macro-F1 of every probe's kept checkpoint.
  Batch best;
  for (std::size_t j = 0; j < jobs_.size(); ++j) best.job.push_back(j);
  std::vector<at::Tensor> w, b;
  for (const auto& f : fit) w.push_back(f.weight), b.push_back(f.bias);
  std::vector<std::vector<std::int32_t>> pred;
  mean_losses(gather_same(best, rows_.test), at::stack(w), at::stack(b), rows_.test, pack_, &pred);
  std::vector<std::int32_t> gold;
  for (std::int64_t i : rows_.test) gold.push_back(pack_.labels[static_cast<std::size_t>(i)]);
  for (std::size_t j = 0; j < jobs_.size(); ++j) {
    fit[j].test_macro_f1 = macro_f1(gold, pred[j]);
    fit[j].weight = fit[j].weight.cpu();
    fit[j].bias = fit[j].bias.cpu();
  }
  return fit;
}

}  // namespace

std::vector<ProbeFit> fit_probes(const at::Tensor& features, const ProbePack& pack, const std::vector<ProbeJob>& jobs,
                                 const ProbeOptions& opts) {
  const std::int64_t n = static_cast<std::int64_t>(pack.sentences.size());
  if (features.dim() != 3 || features.size(1) != n)
    fail(pack.path, "features", "expected [layers, " + std::to_string(n) + ", hidden] pooled features");
  check_options(pack, opts);
  if (jobs.empty()) return {};
  return Trainer(features, pack, jobs, opts).run();
}

ProbeFit fit_probe(const at::Tensor& features, const ProbePack& pack, std::int32_t seed, const ProbeOptions& opts) {
  const std::int64_t n = static_cast<std::int64_t>(pack.sentences.size());
  if (features.dim() != 2 || features.size(0) != n)
    fail(pack.path, "features", "expected [" + std::to_string(n) + ", hidden] pooled features");
  return fit_probes(features.unsqueeze(0), pack, {{0, seed}}, opts).front();
}

}  // namespace ms::eval
