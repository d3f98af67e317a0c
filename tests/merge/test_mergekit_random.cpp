// DELLA's random drop (src/merge/methods/della.cpp): mergekit 0.1.5 draws it from torch's
// generator, mergesweep from its counter-based hash, so outputs cannot be compared entry by entry.
// What is checked instead:
//  (1) the keep probabilities against an independent reference written here from mergekit's
//      della_magprune (magnitude ranks within each row), the kept fraction within binomial bounds
//      of them, and the rescale of the kept entries (one L1 factor per τ, as mergekit's);
//  (2) the mask is a pure function of (seed, configuration, checkpoint, tensor, element), whatever
//      the thread count or the row blocks;
//  (3) mergekit's own della / della_linear outputs (tests/fixtures/mergekit_methods) decoded into
//      each member's kept entries and scale: both agree with this implementation's probabilities
//      and rescale within binomial bounds.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "common/test_util.hpp"
#include "merge/methods/della.hpp"
#include "mergesweep/io/safetensors_file.hpp"
#include "mergesweep/merge/merge.hpp"
#include "mergesweep/merge/mergekit_config.hpp"
#include "mergesweep/merge/request.hpp"
#include "mergesweep/merge/resident.hpp"

namespace ms::merge {
namespace {

// Every bound below is this many standard deviations of a binomial count (or of a sum of
// independent Bernoulli terms): a correct implementation fails one check in about 10⁶, while a
// wrong probability (a reversed ranking, 1 − p, the wrong epsilon) moves counts by tens of them.
constexpr double kSigmas = 5;

const GlobalStats kNoStats;

at::Tensor random_tau(std::vector<std::int64_t> shape, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, gen, at::kFloat) * 0.01;
}

MergeRequest della_request(const char* method, std::map<std::string, std::string> params, double density,
                           std::vector<int> checkpoints = {0}) {
  MergeRequest r;
  r.method = find_method(method);
  r.params = validate_params(r.method->params, params, "", "");
  for (int i : checkpoints) r.members.push_back({"m", i, 1.0, density});
  return r;
}

// mergekit's della_magprune, written from its definition: each row (a vector is one row) ranked by
// |τ| ascending (equal magnitudes by index), rank_norm = rank / (cols − 1) in [0, 1], and
// p = density − epsilon + 2 · epsilon · rank_norm. In double: the implementation's float32 steps
// must agree to float32 rounding.
std::vector<double> reference_probabilities(const at::Tensor& tau, double density, double epsilon) {
  const at::Tensor rows = (tau.dim() < 2 ? tau.reshape({1, -1}) : tau).contiguous();
  const std::int64_t n_rows = rows.size(0), cols = rows.size(1);
  const float* x = rows.data_ptr<float>();
  std::vector<double> p(static_cast<std::size_t>(rows.numel()));
  std::vector<std::int64_t> order(static_cast<std::size_t>(cols));
  for (std::int64_t r = 0; r < n_rows; ++r) {
    const float* row = x + r * cols;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::int64_t a, std::int64_t b) { return std::fabs(row[a]) < std::fabs(row[b]); });
    for (std::int64_t k = 0; k < cols; ++k) {
      const double rank_norm = static_cast<double>(k) / static_cast<double>(cols - 1);
      p[static_cast<std::size_t>(r * cols + order[static_cast<std::size_t>(k)])] =
          density - epsilon + 2 * epsilon * rank_norm;
    }
  }
  return p;
}

// Kept count of `mask` against the sum of the probabilities `p` (both flat, float), within bounds.
void expect_binomial(const at::Tensor& mask, const at::Tensor& p, const std::string& what) {
  const double kept = mask.sum().item<double>();
  const double mean = p.to(at::kDouble).sum().item<double>();
  const double var = (p.to(at::kDouble) * (1 - p.to(at::kDouble))).sum().item<double>();
  EXPECT_LE(std::fabs(kept - mean), kSigmas * std::sqrt(var) + 1) << what << ": kept " << kept << ", expected " << mean;
}

TEST(Della, KeepProbabilitiesFollowMagnitudeRanksWithinRows) {
  for (const auto& shape : std::vector<std::vector<std::int64_t>>{{48, 301}, {777}, {5, 2}}) {
    const at::Tensor tau = random_tau(shape, 11);
    const at::Tensor p = della::keep_probabilities(tau, 0.4, 0.25);
    ASSERT_EQ(p.sizes(), tau.sizes());
    const std::vector<double> want = reference_probabilities(tau, 0.4, 0.25);
    const at::Tensor flat = p.reshape({-1}).to(at::kDouble);
    double worst = 0;
    for (std::size_t i = 0; i < want.size(); ++i)
      worst = std::max(worst, std::fabs(flat[static_cast<std::int64_t>(i)].item<double>() - want[i]));
    EXPECT_LE(worst, 1e-7) << shape.size() << "-d";  // float32 rounding of values in [0.15, 0.65]
    const at::Tensor rows = tau.dim() < 2 ? p.reshape({1, -1}) : p;
    EXPECT_NEAR(std::get<0>(rows.min(1)).max().item<double>(), 0.15, 1e-7);  // smallest magnitude: d − ε
    EXPECT_NEAR(std::get<0>(rows.max(1)).min().item<double>(), 0.65, 1e-7);  // largest: d + ε
  }
}

// The radix ranks are the stable sort's ranks, on rows with many equal magnitudes, both zeros and NaN.
TEST(Della, MagnitudeRanksAreTheStableSortsRanks) {
  at::manual_seed(21);
  at::Tensor rows = (at::randn({37, 1001}) * at::exp(at::randn({37, 1001}) * 3)).to(at::kBFloat16).to(at::kFloat);
  rows.narrow(1, 0, 300).copy_(at::randint(-2, 3, {37, 300}).to(at::kFloat));  // ties, +0 and −0
  rows[3][7] = std::nanf("");
  rows[3][9] = -std::nanf("");
  const at::Tensor order = std::get<1>(at::sort(rows.abs(), /*stable=*/true, -1, /*descending=*/false));
  const at::Tensor expected =
      at::empty_like(order).scatter_(-1, order, at::arange(rows.size(1), order.options()).expand_as(order)).to(at::kFloat);
  EXPECT_TRUE(della::magnitude_ranks(rows).equal(expected));
}

TEST(Della, KeptFractionFollowsTheProbabilities) {
  const at::Tensor tau = random_tau({64, 1000}, 12);
  const at::Tensor p = della::keep_probabilities(tau, 0.5, 0.3);
  const at::Tensor mask = della::keep_mask(3, 77, 2, "w", 0, p);
  ASSERT_EQ(mask.sizes(), p.sizes());
  EXPECT_TRUE(mask.eq(0).logical_or(mask.eq(1)).all().item<bool>());
  for (std::int64_t r = 0; r < 64; ++r) expect_binomial(mask[r], p[r], "row " + std::to_string(r));
  // By rank decile over the tensor: the keep rate rises from 0.2 to 0.8 with the magnitude rank,
  // each decile within bounds of its own probabilities (a reversed ranking fails every one).
  const at::Tensor rank_norm = (p - 0.2) / 0.6;
  for (int d = 0; d < 10; ++d) {
    const at::Tensor in = (rank_norm >= d / 10.0).logical_and(rank_norm < (d + 1) / 10.0 + (d == 9 ? 1e-6 : 0));
    expect_binomial(mask.masked_select(in), p.masked_select(in), "decile " + std::to_string(d));
  }
  // u < p: probability 0 keeps nothing, 1 keeps everything.
  EXPECT_EQ(della::keep_mask(3, 77, 2, "w", 0, at::zeros({4096})).sum().item<double>(), 0);
  EXPECT_EQ(della::keep_mask(3, 77, 2, "w", 0, at::ones({4096})).sum().item<double>(), 4096);
}

// mergekit 0.1.5 rescales a sparsified τ by ‖τ‖₁ / ‖m ⊙ τ‖₁ (sparsify.rescaled_masked_tensor, its
// `rescale: true`), one factor per τ, not by 1/pᵢ per entry as the DELLA paper writes it. The merge
// of one member with weight 1 on a zero base is that τ: its kept entries, divided by τ, must all
// be that one factor (1/pᵢ would spread them over 1/0.8 … 1/0.2).
TEST(Della, KeptEntriesAreRescaledToTheL1NormAsMergekitDoes) {
  const std::string name = "model.layers.0.mlp.up_proj.weight";
  const at::Tensor tau = random_tau({64, 1000}, 13);
  const MergeRequest r = della_request("della_linear", {{"epsilon", "0.3"}, {"seed", "5"}}, 0.5, {4});
  const at::Tensor out = merge_tensor(r, kNoStats, name, at::zeros_like(tau), {tau});
  const at::Tensor p = della::keep_probabilities(tau, 0.5, 0.3);
  const at::Tensor keep = della::keep_mask(5, r.config_hash(), 4, name, 0, p);
  EXPECT_TRUE(out.ne(0).equal(keep.ne(0))) << "the merge keeps what keep_mask draws";
  const double l1 = tau.abs().sum().item<double>(), kept_l1 = (tau * keep).abs().sum().item<double>();
  const at::Tensor factor = (out / tau).masked_select(keep.ne(0)).to(at::kDouble);
  EXPECT_NEAR(factor.min().item<double>(), l1 / kept_l1, 1e-5 * l1 / kept_l1);
  EXPECT_NEAR(factor.max().item<double>(), l1 / kept_l1, 1e-5 * l1 / kept_l1);
  // The kept L1 norm itself is a sum of independent terms pᵢ-weighted: within bounds of Σ pᵢ|τᵢ|.
  const at::Tensor a = tau.abs().to(at::kDouble), pd = p.to(at::kDouble);
  const double mean = (pd * a).sum().item<double>(), sd = std::sqrt((pd * (1 - pd) * a * a).sum().item<double>());
  EXPECT_LE(std::fabs(kept_l1 - mean), kSigmas * sd);
  // rescale: false leaves the kept entries as they are.
  const MergeRequest plain = della_request("della_linear", {{"epsilon", "0.3"}, {"rescale", "false"}}, 0.5, {4});
  const at::Tensor raw = merge_tensor(plain, kNoStats, name, at::zeros_like(tau), {tau});
  EXPECT_TRUE(raw.eq(0).logical_or(raw.eq(tau)).all().item<bool>());
}

TEST(Della, MaskIsAPureFunctionOfItsInputsWhateverTheRowBlocks) {
  const at::Tensor tau = random_tau({40, 257}, 14);
  const at::Tensor p = della::keep_probabilities(tau, 0.6, 0.2);
  const at::Tensor whole = della::keep_mask(1, 2, 3, "t", 0, p);
  EXPECT_TRUE(whole.equal(della::keep_mask(1, 2, 3, "t", 0, p)));
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  EXPECT_TRUE(whole.equal(della::keep_mask(1, 2, 3, "t", 0, p)));
  at::set_num_threads(threads);
  EXPECT_FALSE(whole.equal(della::keep_mask(7, 2, 3, "t", 0, p)));  // another seed
  EXPECT_FALSE(whole.equal(della::keep_mask(1, 9, 3, "t", 0, p)));  // another configuration
  EXPECT_FALSE(whole.equal(della::keep_mask(1, 2, 4, "t", 0, p)));  // another checkpoint
  EXPECT_FALSE(whole.equal(della::keep_mask(1, 2, 3, "u", 0, p)));  // another tensor
  // Row blocks: ranks are within rows, so a block's probabilities are its rows' and, drawn at its
  // element offset, its mask is the whole tensor's rows.
  std::vector<at::Tensor> blocks;
  for (const auto& [r0, r1] : std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 13}, {13, 14}, {14, 40}}) {
    const at::Tensor pb = della::keep_probabilities(tau.slice(0, r0, r1), 0.6, 0.2);
    EXPECT_TRUE(pb.equal(p.slice(0, r0, r1)));
    blocks.push_back(della::keep_mask(1, 2, 3, "t", r0 * 257, pb));
  }
  EXPECT_TRUE(whole.equal(at::cat(blocks)));
  // The merge: the same request twice gives the same tensor; another seed another one.
  const std::string name = "model.layers.1.self_attn.q_proj.weight";
  const std::vector<at::Tensor> taus = {tau, random_tau({40, 257}, 15)};
  const at::Tensor base = random_tau({40, 257}, 16);
  const MergeRequest r = della_request("della", {}, 0.5, {2, 0});
  const at::Tensor once = merge_tensor(r, kNoStats, name, base, taus);
  EXPECT_TRUE(once.equal(merge_tensor(r, kNoStats, name, base, taus)));
  EXPECT_FALSE(
      once.equal(merge_tensor(della_request("della", {{"seed", "1"}}, 0.5, {2, 0}), kNoStats, name, base, taus)));
}

// ---- (3) mergekit's own draws ----------------------------------------------------------------

const std::string kModels = test::source_path("tests/fixtures/merge");  // the YAMLs' model paths start here
const std::string kCases = test::source_path("tests/fixtures/mergekit_methods/cases");

// mergekit's merge of one tensor as a function of which members kept an entry (bit i of subset s)
// and of each member's rescale factor cᵢ: δ = λ Σ_{i∈A} cᵢ aᵢ / divisor with aᵢ = wᵢτᵢ. Linear:
// A = s, divisor Σ wᵢ when normalize. TIES (della): A = the members of s whose sign is the sign
// of Σ_{i∈s} cᵢ aᵢ (≥ 0: +), divisor Σ_{i∈A} wᵢ (0 → 1) when normalize. δ is linear in c for a
// fixed A: coefficients(s, c)[i] is cᵢ's coefficient at every entry.
struct GtaModel {
  std::vector<at::Tensor> a;  // wᵢτᵢ, float64, flat
  std::vector<double> w;
  double lambda = 1;
  bool ties = false, normalize = false;

  std::vector<at::Tensor> coefficients(unsigned s, const std::vector<double>& c) const {
    const at::Tensor zero = at::zeros_like(a[0]);
    at::Tensor sum = zero.clone(), divisor = zero.clone();
    for (std::size_t i = 0; i < a.size(); ++i)
      if (s >> i & 1u) sum += c[i] * a[i];
    const at::Tensor elected = at::where(sum >= 0, at::ones_like(sum), -at::ones_like(sum));
    std::vector<at::Tensor> agree;
    double w_all = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const bool kept = s >> i & 1u;
      agree.push_back(!kept ? zero : ties ? a[i].sign().eq(elected).to(at::kDouble) : at::ones_like(zero));
      divisor += agree.back() * w[i];
      w_all += w[i];
    }
    if (!ties) divisor.fill_(std::fabs(w_all) < 1e-8 ? 1.0 : w_all);
    if (!normalize) divisor.fill_(1.0);
    divisor.masked_fill_(divisor.eq(0), 1.0);
    std::vector<at::Tensor> coef;
    for (std::size_t i = 0; i < a.size(); ++i) coef.push_back(lambda * agree[i] * a[i] / divisor);
    return coef;
  }
  at::Tensor predict(unsigned s, const std::vector<double>& c) const {
    const auto coef = coefficients(s, c);
    at::Tensor d = at::zeros_like(a[0]);
    for (std::size_t i = 0; i < a.size(); ++i) d += c[i] * coef[i];
    return d;
  }
};

// Member i's scale, first estimate: where member i alone changed an entry, δ is cᵢ times the
// coefficient of its one-member subset, so δ / that coefficient is cᵢ (to rounding) again and
// again, while every other mix of members spreads out. The most repeated value (within 1e-5) is
// cᵢ. Zeros (all dropped) and ratios no L1 rescale can give (cᵢ ≥ 1 unless a τ is all but zero)
// are left out.
double mode_scale(const GtaModel& m, const at::Tensor& delta, std::size_t i) {
  const at::Tensor r = delta / m.coefficients(1u << i, std::vector<double>(m.a.size(), 1.0))[i];
  const at::Tensor sorted = std::get<0>(r.masked_select(at::isfinite(r) & (r > 0.5) & (r < 20)).sort());
  if (sorted.numel() == 0) return 1.0;
  const at::Tensor count = at::searchsorted(sorted, sorted * (1 + 1e-5), false, /*right=*/true) -
                           at::searchsorted(sorted, sorted * (1 - 1e-5));
  return sorted[count.argmax()].item<double>();
}

// Decodes mergekit's δ: from the scales' first estimates, the subset that explains each entry
// best, then the least-squares scales for those subsets; three rounds.
struct Decoded {
  at::Tensor best;            // subset per entry
  at::Tensor predictions;     // [subsets, entries] at the final scales
  std::vector<double> scale;  // cᵢ
};
Decoded decode(const GtaModel& m, const at::Tensor& delta) {
  const auto n = static_cast<std::int64_t>(m.a.size());
  const unsigned subsets = 1u << n;
  std::vector<double> c;
  for (std::size_t i = 0; i < m.a.size(); ++i) c.push_back(mode_scale(m, delta, i));
  Decoded d;
  for (int round = 0; round <= 3; ++round) {
    std::vector<std::vector<at::Tensor>> coef;
    std::vector<at::Tensor> pred;
    for (unsigned s = 0; s < subsets; ++s) {
      coef.push_back(m.coefficients(s, c));
      pred.push_back(m.predict(s, c));
    }
    d.predictions = at::stack(pred);
    d.best = (d.predictions - delta.unsqueeze(0)).abs().argmin(0);
    if (round == 3) break;
    at::Tensor x = at::zeros({delta.numel(), n}, at::kDouble);
    for (unsigned s = 0; s < subsets; ++s)
      for (std::int64_t i = 0; i < n; ++i)
        x.select(1, i).add_(at::where(d.best.eq(static_cast<std::int64_t>(s)), coef[s][static_cast<std::size_t>(i)],
                                      at::zeros_like(delta)));
    const at::Tensor sol = std::get<0>(at::linalg_lstsq(x, delta.unsqueeze(1)));
    for (std::int64_t i = 0; i < n; ++i) c[static_cast<std::size_t>(i)] = sol[i][0].item<double>();
  }
  d.scale = c;
  return d;
}

// Counts kept against expected (Σ p) and its variance, summed over tensors.
struct Tally {
  double count = 0, kept = 0, mean = 0, var = 0;
  void add(const at::Tensor& mask, const at::Tensor& p) {
    count += static_cast<double>(mask.numel());
    kept += mask.sum().item<double>();
    mean += p.sum().item<double>();
    var += (p * (1 - p)).sum().item<double>();
  }
  double sigmas() const { return (kept - mean) / std::sqrt(var); }
};

// What one case adds up over its tensors.
struct CaseTally {
  std::vector<Tally> member;
  Tally low, high;  // the lowest and the highest third of magnitude ranks, every member
  double worst_scale = 0;
};

// One tensor of a case. mergekit's float32 arithmetic leaves δ = out − θ₀ within a few ulps of the
// largest value it went through (out, θ₀, each cᵢwᵢτᵢ): the decoded prediction must come within 8
// of them (measured: ≤ 4.2). A member's keep bit counts as identified where flipping it moves the
// prediction by more than 32 ulps; elsewhere (a τ entry below the rounding, or, for della, a
// member whose sign lost the election either way) the output does not say whether it was kept,
// and that entry is left out of that member's count on both sides (kept and expected). Whether an
// entry is identified depends on the other members' bits and on magnitudes, not on its own bit,
// so the comparison stays unbiased.
void check_tensor(const MergeRequest& r, GtaModel& m, const std::string& tensor, const at::Tensor& base,
                  const at::Tensor& out, const std::vector<at::Tensor>& taus, CaseTally& t) {
  const std::string& method = r.method->name;
  const double eps = r.params.number("epsilon");
  std::vector<at::Tensor> tau, p;
  m.a.clear();
  for (std::size_t i = 0; i < taus.size(); ++i) {
    tau.push_back(taus[i].to(at::kDouble).reshape({-1}));
    p.push_back(della::keep_probabilities(taus[i], r.members[i].density, eps).to(at::kDouble).reshape({-1}));
    m.a.push_back(m.w[i] * tau[i]);
  }
  const Decoded d = decode(m, out - base);
  at::Tensor ulp = out.abs() + base.abs();
  for (std::size_t i = 0; i < taus.size(); ++i) ulp += std::fabs(d.scale[i]) * m.a[i].abs();
  ulp = ulp * std::ldexp(1.0, -24) + 1e-15;
  const at::Tensor best = d.predictions.gather(0, d.best.unsqueeze(0)).squeeze(0);
  EXPECT_LE(((best - (out - base)).abs() - 8 * ulp).max().item<double>(), 0)
      << method << ": " << tensor << " is not θ₀ plus some members' rescaled τ";
  for (std::size_t i = 0; i < taus.size(); ++i) {
    const std::int64_t bit = std::int64_t{1} << i;
    const at::Tensor flipped = d.predictions.gather(0, d.best.bitwise_xor(bit).unsqueeze(0)).squeeze(0);
    const at::Tensor known = (flipped - best).abs() > 32 * ulp;
    const at::Tensor kept = d.best.bitwise_and(bit).ne(0).to(at::kDouble);
    const at::Tensor kk = kept.masked_select(known), pk = p[i].masked_select(known);
    expect_binomial(kk, pk, method + ": " + tensor + " member " + std::to_string(i));
    t.member[i].add(kk, pk);
    const at::Tensor rank = (pk - (r.members[i].density - eps)) / (2 * eps);
    t.low.add(kk.masked_select(rank < 1.0 / 3), pk.masked_select(rank < 1.0 / 3));
    t.high.add(kk.masked_select(rank > 2.0 / 3), pk.masked_select(rank > 2.0 / 3));
    // The scale: ‖τ‖₁ / cᵢ is the kept L1 norm mergekit divided by, a sum of independent
    // pᵢ-weighted terms: within bounds of Σ pᵢ|τᵢ|. For della_linear every entry is decoded, and
    // the scale must be the L1 ratio of the decoded keep-mask itself.
    const at::Tensor a = tau[i].abs();
    const double l1 = a.sum().item<double>(), mean = (p[i] * a).sum().item<double>();
    const double sd = std::sqrt((p[i] * (1 - p[i]) * a * a).sum().item<double>());
    EXPECT_LE(std::fabs(l1 / d.scale[i] - mean), kSigmas * sd) << method << ": " << tensor << " member " << i;
    if (!m.ties)
      t.worst_scale = std::max(t.worst_scale, std::fabs(d.scale[i] * (kept * a).sum().item<double>() / l1 - 1));
  }
}

// Tensors of fewer than 256 entries (the 32-entry norm vectors) are skipped: too few of their
// entries were changed by one member alone to pin that member's scale down (mode_scale).
void check_case(const std::string& name) {
  const std::string yaml = kCases + "/" + name + "/config.yaml";
  const StreamingJob job = parse_mergekit_config(test::read_file(yaml), yaml);
  const MergeRequest& r = job.request;
  ASSERT_EQ(r.method->name, name);
  std::vector<std::string> paths;
  for (const auto& mem : job.member_paths) paths.push_back(kModels + "/" + mem);
  const ResidentModels held(kModels + "/" + job.base_path, paths);
  const auto expected = io::SafetensorsFile::open(kCases + "/" + name + "/expected.safetensors");
  GtaModel m;
  m.lambda = r.params.number("lambda");
  m.ties = name == "della";
  m.normalize = r.params.flag("normalize");
  for (const auto& mem : r.members) m.w.push_back(mem.weight);
  CaseTally t;
  t.member.resize(r.members.size());
  int tensors = 0;
  for (const auto& e : expected->header().tensors) {
    const at::Tensor base = held.base(e.name);
    if (base.numel() < 256) continue;
    std::vector<at::Tensor> taus;
    for (std::size_t i = 0; i < r.members.size(); ++i) taus.push_back(held.tau(i, e.name));
    check_tensor(r, m, e.name, base.to(at::kDouble).reshape({-1}), expected->tensor(e).to(at::kDouble).reshape({-1}),
                 taus, t);
    ++tensors;
  }
  EXPECT_GE(tensors, 10);
  for (std::size_t i = 0; i < t.member.size(); ++i) {
    EXPECT_LE(std::fabs(t.member[i].sigmas()), kSigmas) << name << " member " << i;
    std::printf("[ della ] %-13s member %zu: kept %.0f of %.0f identified entries, expected %.1f (%+.2f sigma)\n",
                name.c_str(), i, t.member[i].kept, t.member[i].count, t.member[i].mean, t.member[i].sigmas());
  }
  EXPECT_LE(std::fabs(t.low.sigmas()), kSigmas) << name << ": lowest third of ranks";
  EXPECT_LE(std::fabs(t.high.sigmas()), kSigmas) << name << ": highest third of ranks";
  std::printf(
      "[ della ] %-13s kept share, lowest third of ranks %.4f (expected %.4f), highest third %.4f (expected "
      "%.4f)\n",
      name.c_str(), t.low.kept / t.low.count, t.low.mean / t.low.count, t.high.kept / t.high.count,
      t.high.mean / t.high.count);
  if (!m.ties) {
    EXPECT_LE(t.worst_scale, 1e-4) << name << ": the rescale is not the L1 ratio of the kept entries";
    std::printf("[ della ] %-13s scale / L1 ratio of the decoded keep-mask - 1: at most %.2g\n", name.c_str(),
                t.worst_scale);
  }
}

TEST(DellaFixtures, MergekitsDellaDrawsFollowTheseProbabilitiesAndRescale) { check_case("della"); }
TEST(DellaFixtures, MergekitsDellaLinearDrawsFollowTheseProbabilitiesAndRescale) { check_case("della_linear"); }

}  // namespace
}  // namespace ms::merge
