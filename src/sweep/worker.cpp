#include "mergesweep/sweep/worker.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/fingerprint.hpp"
#include "mergesweep/core/gpu_binding.hpp"
#include "mergesweep/core/sha256.hpp"
#include "mergesweep/dist/comm.hpp"
#include "mergesweep/dist/progress.hpp"
#include "mergesweep/dist/signals.hpp"
#include "mergesweep/eval/evaluate.hpp"
#include "mergesweep/eval/task_pack.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/merge/model_stats.hpp"
#include "mergesweep/merge/resident.hpp"
#include "mergesweep/model/arch_table.hpp"
#include "mergesweep/model/decoder.hpp"
#include "mergesweep/model/device.hpp"
#include "mergesweep/sweep/eval_rows.hpp"
#include "mergesweep/sweep/failure.hpp"
#include "mergesweep/sweep/memory_plan.hpp"

namespace ms::sweep {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr std::int64_t kChunk = 4096;

template <class F>
double chunked(std::int64_t n, F&& f) {
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<std::size_t>(chunks), 0.0);
  at::parallel_for(0, chunks, 16, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t c = b; c < e; ++c) {
      const std::int64_t lo = c * kChunk, hi = std::min(n, lo + kChunk);
      double s = 0;
      for (std::int64_t i = lo; i < hi; ++i) s += f(i);
      part[static_cast<std::size_t>(c)] = s;
    }
  });
  double total = 0;
  for (double p : part) total += p;
  return total;
}

// Reducer for whole-model merge statistics (global TIES trim) over the group's ranks. A rank
// that failed earlier in the merge meets the others in their agreement, not in the sum.
class GroupReducer final : public merge::Reducer {
 public:
  explicit GroupReducer(dist::Comm& c) : c_(c) {}
  void allreduce_sum(std::int64_t* d, std::size_t n) override {
    agree_reached(c_, "merge");
    c_.allreduce_sum(d, n);
  }
  void allreduce_sum(double* d, std::size_t n) override {
    agree_reached(c_, "merge");
    c_.allreduce_sum(d, n);
  }

 private:
  dist::Comm& c_;
};

// XXH64 of a contiguous 1-D tensor's bytes as held. A device tensor's bytes are copied to the host
// in slabs of about 64 MB, so the host never holds a whole embedding matrix for it.
std::uint64_t bytes_digest(const at::Tensor& flat) {
  const std::int64_t esize = static_cast<std::int64_t>(flat.element_size());
  if (flat.device().is_cpu()) return xxh64(flat.data_ptr(), static_cast<std::size_t>(flat.numel() * esize));
  Xxh64 h;
  const std::int64_t slab = (std::int64_t{64} << 20) / esize;
  for (std::int64_t s0 = 0; s0 < flat.numel(); s0 += slab) {
    const at::Tensor host = flat.narrow(0, s0, std::min(slab, flat.numel() - s0)).to(at::kCPU).contiguous();
    h.update(host.data_ptr(), static_cast<std::size_t>(host.numel() * esize));
  }
  return h.digest();
}

}  // namespace

double chunked_dot(const float* a, const float* b, std::int64_t n) {
  return chunked(n, [&](std::int64_t i) { return static_cast<double>(a[i]) * static_cast<double>(b[i]); });
}
double chunked_sqdiff(const float* a, const float* b, std::int64_t n) {
  return chunked(n, [&](std::int64_t i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    return d * d;
  });
}

namespace {

bool cpu_float32(const at::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(); }

// [chunks, kChunk] in double, zero-padded (padding adds exact zeros).
at::Tensor in_chunks(const at::Tensor& x) {
  at::Tensor flat = x.reshape({-1}).to(at::kDouble);
  const std::int64_t pad = (kChunk - flat.numel() % kChunk) % kChunk;
  if (pad > 0) flat = at::constant_pad_nd(flat, {0, pad});
  return flat.view({-1, kChunk});
}
double add_in_order(const at::Tensor& per_chunk) {
  const at::Tensor host = per_chunk.to(at::kCPU).contiguous();
  const double* p = host.data_ptr<double>();
  double total = 0;
  for (std::int64_t i = 0; i < host.numel(); ++i) total += p[i];
  return total;
}

}  // namespace

namespace {
// The per-chunk sums of f(a, b), taken over slabs of kSlabChunks chunks: the float64 copies a
// device holds are a few slabs (about 32 MB each), not four of the whole tensor (17 GB for an 8B
// model's embedding). Chunk sums are added in order on the host, as the loops add them.
constexpr std::int64_t kSlabChunks = 1024;
double chunked_aten(const at::Tensor& a, const at::Tensor& b,
                    const std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>& per_chunk) {
  const at::Tensor fa = a.reshape({-1}), fb = b.reshape({-1});
  const std::int64_t slab = kSlabChunks * kChunk;
  std::vector<at::Tensor> sums;
  for (std::int64_t s0 = 0; s0 < fa.numel(); s0 += slab) {
    const std::int64_t len = std::min(slab, fa.numel() - s0);
    sums.push_back(per_chunk(in_chunks(fa.narrow(0, s0, len)), in_chunks(fb.narrow(0, s0, len))));
  }
  return sums.empty() ? 0.0 : add_in_order(at::cat(sums));
}
}  // namespace

double chunked_dot_aten(const at::Tensor& a, const at::Tensor& b) {
  return chunked_aten(a, b, [](const at::Tensor& x, const at::Tensor& y) { return (x * y).sum(1); });
}
double chunked_sqdiff_aten(const at::Tensor& a, const at::Tensor& b) {
  return chunked_aten(a, b, [](const at::Tensor& x, const at::Tensor& y) { return (x - y).pow(2).sum(1); });
}
namespace {
// chunked_sqdiff of float32 `a` and a stored-dtype `b`, each element of `b` widened in the loop.
template <class T>
double sqdiff_widened(const at::Tensor& a, const T* y) {
  const auto* x = a.data_ptr<float>();
  return chunked(a.numel(), [&](std::int64_t i) {
    const double d = static_cast<double>(x[i]) - static_cast<double>(static_cast<float>(y[i]));
    return d * d;
  });
}
}  // namespace

double chunked_dot(const at::Tensor& a, const at::Tensor& b) {
  if (cpu_float32(a) && cpu_float32(b)) return chunked_dot(a.data_ptr<float>(), b.data_ptr<float>(), a.numel());
  return chunked_dot_aten(a, b);
}
double chunked_sqdiff(const at::Tensor& a, const at::Tensor& b) {
  if (cpu_float32(a) && cpu_float32(b)) return chunked_sqdiff(a.data_ptr<float>(), b.data_ptr<float>(), a.numel());
  // A base held as stored (bf16, f16) on the CPU: widened element by element in the loop, which
  // is exact, so the sum is bitwise the float32 loop's on the widened base, without the twin's
  // whole-tensor float64 copies (four of them: 1 GB for a 32M-value embedding).
  const bool cpu_a = cpu_float32(a), cpu_b = b.device().is_cpu() && b.is_contiguous() && b.numel() == a.numel();
  if (cpu_a && cpu_b && b.scalar_type() == at::kBFloat16) return sqdiff_widened(a, b.data_ptr<at::BFloat16>());
  if (cpu_a && cpu_b && b.scalar_type() == at::kHalf) return sqdiff_widened(a, b.data_ptr<at::Half>());
  return chunked_sqdiff_aten(a, b);
}

std::vector<int> assign_shards(const std::vector<std::string>& names, const std::vector<std::uint64_t>& bytes, int size) {
  std::vector<std::size_t> order(names.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return bytes[a] != bytes[b] ? bytes[a] > bytes[b] : names[a] < names[b];
  });
  std::vector<std::uint64_t> load(static_cast<std::size_t>(size), 0);
  std::vector<int> owner(names.size(), 0);
  for (std::size_t i : order) {
    const auto r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[i] = r;
    load[static_cast<std::size_t>(r)] += bytes[i];
  }
  return owner;
}

struct Worker::Impl {
  Impl(const SweepSpec& s, dist::Comm& c) : spec(s), comm(c) {}
  const SweepSpec& spec;
  dist::Comm& comm;
  int group_index = 0;
  std::vector<std::string> names;            // every tensor of the model, sorted
  std::vector<int> owner;                    // rank holding names[i]
  std::vector<std::string> mine;             // names this rank holds
  std::vector<std::int64_t> numel;
  std::vector<std::vector<std::int64_t>> shapes;
  std::unique_ptr<merge::ResidentModels> res;
  io::ModelConfig config;
  // The merged model in the eval dtype, gathered: every rank's tensors in one flat buffer, rank
  // after rank, each rank's in name order (allocated once, reused between configs).
  at::Tensor gathered;
  at::Tensor shard;                          // this rank's part: a view of `gathered`
  Worker::GatherTraffic traffic;             // what gather_merged() received
  std::vector<std::int64_t> offset;          // names[i] at gathered[offset[i]...]
  std::vector<std::int64_t> rank_begin, rank_count;  // per rank, in elements
  std::vector<std::vector<double>> gram;     // task-vector dot products over the whole model
  std::vector<eval::TaskPack> tasks;
  std::vector<eval::ProbePack> probes;
  std::vector<archive::TaskRecord> records;
  eval::EvalOptions eval_opts;
  at::ScalarType dtype = at::kFloat;

  // The group's share of one evaluation: sums over the group (each after the group's success
  // agreement: failure.hpp), stop on a drop request. The stop check runs between scoring rounds
  // on every rank, so it also reports progress to the silence detector.
  eval::EvalShare share() {
    eval::EvalShare s;
    s.rank = comm.rank();
    s.size = comm.size();
    s.sum_int = [this](std::int64_t* d, std::size_t n) {
      agree_reached(comm, "eval");
      comm.allreduce_sum(d, n);
    };
    s.sum_double = [this](double* d, std::size_t n) {
      agree_reached(comm, "eval");
      comm.allreduce_sum(d, n);
    };
    s.stop = [] { return dist::poll_drop_between_blocks(); };
    return s;
  }

  void compute_gram();
  archive::ModelStatRecord model_stats(const PlannedConfig& c, std::vector<double>& sq);
  void lay_out_gather();
  void merge_shard(const PlannedConfig& c, std::vector<double>& sq);
  void digest_shard(std::vector<std::int64_t>& digests) const;
  archive::FingerprintRecord fingerprint(const PlannedConfig& c, std::vector<std::int64_t>& digests);
  std::map<std::string, at::Tensor> gather_merged();

  bool group_drop() {
    std::int64_t f = dist::drop_requested() ? 1 : 0;
    if (comm.size() > 1) comm.allreduce_sum(&f, 1);
    return f > 0;
  }
};

// Pairwise task-vector dot products over the whole model, once per sweep (members' cosines are
// lookups later). τ is formed per tensor (two at a time), never held for the whole model.
void Worker::Impl::compute_gram() {
  const std::size_t N = spec.checkpoints.size();
  std::vector<double> dots(names.size() * N * N, 0.0);
  for (std::size_t t = 0; t < names.size(); ++t) {
    if (owner[t] != comm.rank()) continue;
    for (std::size_t i = 0; i < N; ++i) {
      const at::Tensor a = res->tau(i, names[t]);
      for (std::size_t j = i; j < N; ++j) {
        const at::Tensor b = j == i ? a : res->tau(j, names[t]);
        dots[(t * N + i) * N + j] = chunked_dot(a, b);
      }
    }
  }
  comm.allreduce_sum(dots.data(), dots.size());  // one nonzero per slot: exact
  gram.assign(N, std::vector<double>(N, 0.0));
  for (std::size_t t = 0; t < names.size(); ++t)
    for (std::size_t i = 0; i < N; ++i)
      for (std::size_t j = i; j < N; ++j) gram[i][j] += dots[(t * N + i) * N + j];
  for (std::size_t i = 0; i < N; ++i)
    for (std::size_t j = 0; j < i; ++j) gram[i][j] = gram[j][i];
}

// Where each tensor lands in the gathered buffer: rank after rank, each rank's tensors in name
// order, so a rank's part is one contiguous run (what an allgatherv moves).
void Worker::Impl::lay_out_gather() {
  const int g = comm.size();
  offset.assign(names.size(), 0);
  rank_begin.assign(static_cast<std::size_t>(g), 0);
  rank_count.assign(static_cast<std::size_t>(g), 0);
  std::int64_t cursor = 0;
  for (int r = 0; r < g; ++r) {
    rank_begin[static_cast<std::size_t>(r)] = cursor;
    for (std::size_t t = 0; t < names.size(); ++t) {
      if (owner[t] != r) continue;
      offset[t] = cursor;
      cursor += numel[t];
    }
    rank_count[static_cast<std::size_t>(r)] = cursor - rank_begin[static_cast<std::size_t>(r)];
  }
  const auto opts = at::TensorOptions().dtype(dtype).device(res->device());
  gathered = at::empty({cursor}, opts);
  const auto me = static_cast<std::size_t>(comm.rank());
  shard = gathered.narrow(0, rank_begin[me], rank_count[me]);  // merged in place, gathered in place
}

// Merges this rank's tensors; each float32 result gives its squared distance from θ₀ (sq[t]) and
// is cast to the eval dtype straight into this rank's part of the gather (the same rounding as
// .to(dtype): one cast kernel). Nothing of the merged model is kept in float32 beyond one tensor.
void Worker::Impl::merge_shard(const PlannedConfig& c, std::vector<double>& sq) {
  std::map<std::string, std::size_t> index;
  for (std::size_t t = 0; t < names.size(); ++t)
    if (owner[t] == comm.rank()) index[names[t]] = t;
  const std::int64_t mine_begin = rank_begin[static_cast<std::size_t>(comm.rank())];
  const auto take = [&](const std::string& name, const at::Tensor& merged) {
    const std::size_t t = index.at(name);
    sq[t] = chunked_sqdiff(merged, res->held_base(name));  // widened in its loop: no float32 copy of θ₀
    shard.narrow(0, offset[t] - mine_begin, numel[t]).copy_(merged.reshape({-1}));
  };
  if (c.kind == ConfigKind::Merge) {
    GroupReducer reducer(comm);
    res->merge_each(c.request(spec), reducer, take);
    return;
  }
  res->baseline_each(c.kind == ConfigKind::Base ? -1 : c.members[0] - 1, take);
}

// XXH64 of each of this rank's merged tensors, in the eval dtype as the gather will move them
// (their bytes in `shard`); the slots of other ranks' tensors stay 0.
void Worker::Impl::digest_shard(std::vector<std::int64_t>& digests) const {
  digests.assign(names.size(), 0);
  for (std::size_t t = 0; t < names.size(); ++t)
    if (owner[t] == comm.rank())
      digests[t] = static_cast<std::int64_t>(bytes_digest(gathered.narrow(0, offset[t], numel[t])));
}

// The model fingerprint of the config (core/fingerprint.hpp): the tensors' digests summed over the
// group (one nonzero per slot: exact) and combined in name order, so it is the same whatever the
// group size or the shard assignment. Hashing only this rank's part costs 1/g of the model.
archive::FingerprintRecord Worker::Impl::fingerprint(const PlannedConfig& c, std::vector<std::int64_t>& digests) {
  if (comm.size() > 1) comm.allreduce_sum(digests.data(), digests.size());
  std::vector<std::pair<std::string, std::uint64_t>> named;
  for (std::size_t t = 0; t < names.size(); ++t) named.emplace_back(names[t], static_cast<std::uint64_t>(digests[t]));
  return {c.id, model_fingerprint(std::move(named)), spec.eval.dtype};
}

// The whole merged model on every rank of the group, in the eval dtype: each rank's part moves
// once; the tensors are views of one buffer reused between configs.
std::map<std::string, at::Tensor> Worker::Impl::gather_merged() {
  if (comm.size() > 1) {
    // In place: each rank's part already sits at its offset (send inside receive, which
    // allgatherv allows), so each part moves once: B·(g−1)/g bytes received per rank.
    std::vector<std::size_t> counts;
    for (std::int64_t n : rank_count) counts.push_back(static_cast<std::size_t>(n) * gathered.element_size());
    comm.allgatherv(shard.data_ptr(), gathered.data_ptr(), counts);
    std::uint64_t all = 0;
    for (auto c : counts) all += c;
    traffic.received += all - counts[static_cast<std::size_t>(comm.rank())];
    ++traffic.gathers;
  }
  std::map<std::string, at::Tensor> full;
  for (std::size_t t = 0; t < names.size(); ++t) full[names[t]] = gathered.narrow(0, offset[t], numel[t]).view(shapes[t]);
  return full;
}

// L2 distance of the merged model from θ₀ (total and per tensor kind, from this rank's squared
// distances summed over the group) and the cosines of the members' task vectors.
archive::ModelStatRecord Worker::Impl::model_stats(const PlannedConfig& c, std::vector<double>& sq) {
  comm.allreduce_sum(sq.data(), sq.size());
  archive::ModelStatRecord st;
  st.config_id = c.id;
  double total = 0;
  std::map<std::string, double> by_kind;
  for (const auto& k : model::tensor_kind_names()) by_kind[k] = 0;  // every kind, zero or not
  for (std::size_t t = 0; t < names.size(); ++t) {
    by_kind[merge::tensor_kind(names[t])] += sq[t];
    total += sq[t];
  }
  for (const auto& [k, v] : by_kind) st.l2_by_kind[k] = std::sqrt(v);
  st.l2_from_base = std::sqrt(total);
  if (c.members.size() >= 2) {
    double sum = 0, lo = 2, hi = -2;
    int pairs = 0;
    for (std::size_t a = 0; a < c.members.size(); ++a) {
      for (std::size_t b = a + 1; b < c.members.size(); ++b) {
        const auto i = static_cast<std::size_t>(c.members[a] - 1), j = static_cast<std::size_t>(c.members[b] - 1);
        const double d = std::sqrt(gram[i][i] * gram[j][j]);
        const double cs = d > 0 ? gram[i][j] / d : 0.0;
        sum += cs;
        lo = std::min(lo, cs);
        hi = std::max(hi, cs);
        ++pairs;
      }
    }
    st.cos_mean = sum / pairs;
    st.cos_min = lo;
    st.cos_max = hi;
  } else {
    st.cos_mean = st.cos_min = st.cos_max = 1.0;
  }
  return st;
}

Worker::Worker(const SweepSpec& spec, dist::Comm& group, int group_index) : impl_(new Impl(spec, group)) {
  Impl& w = *impl_;
  w.group_index = group_index;
  const io::HfModel base = io::HfModel::open(spec.base);
  w.config = *base.config();
  w.names = base.tensor_names();
  std::vector<std::uint64_t> bytes;
  for (const auto& n : w.names) {
    bytes.push_back(base.require(n).nbytes());
    w.numel.push_back(base.require(n).numel());
    w.shapes.push_back(base.require(n).shape);
  }
  if (group.size() > static_cast<int>(w.names.size()))
    fail(spec.path, "schedule.group_size", "a group of " + std::to_string(group.size()) + " ranks is larger than the model's " +
                                               std::to_string(w.names.size()) + " tensors");
  w.owner = assign_shards(w.names, bytes, group.size());
  for (std::size_t i = 0; i < w.names.size(); ++i)
    if (w.owner[i] == group.rank()) w.mine.push_back(w.names[i]);
  merge::ResidentOptions ro;
  ro.vocab = spec.vocab_choice();
  ro.device = model::resolve_device(spec.schedule.device, node_slot().rank, spec.path, "schedule.device");
  // Refuse before loading anything when the group's shards will not fit this rank's memory.
  require_fit(plan_memory(spec, read_model_shape(spec), group.size(), ro.device, node_slot().size), spec);
  w.dtype = spec.eval.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
  agreed(group, "residents", [&] {  // a rank out of memory must not strand its peers
    inject_test_failure("residents", 0, group_index * group.size() + group.rank());
    w.res = std::make_unique<merge::ResidentModels>(spec.base, spec.checkpoints, w.mine, ro);
    w.lay_out_gather();
  });
  w.compute_gram();

  w.eval_opts.score.batch_tokens = spec.eval.batch_tokens;
  w.eval_opts.score.max_length = spec.eval.max_length;
  w.eval_opts.layers = spec.eval.layers;
  w.eval_opts.probe_seeds = spec.eval.probe_seeds;
  for (const auto& p : spec.eval.tasks) {
    eval::TaskPack pack = eval::read_task_pack(p);
    if (pack.vocab_size > w.config.vocab_size)
      fail(p, "vocab_size", "the pack's vocabulary (" + std::to_string(pack.vocab_size) + ") is larger than the model's (" +
                                std::to_string(w.config.vocab_size) + ")");
    eval::limit_task_pack(pack, spec.eval.limit);
    w.records.push_back({pack.name, "task", p, sha256_file(p), static_cast<std::int64_t>(pack.items.size())});
    w.tasks.push_back(std::move(pack));
  }
  for (const auto& p : spec.eval.probes) {
    eval::ProbePack pack = eval::read_probe_pack(p);
    if (pack.vocab_size > w.config.vocab_size)
      fail(p, "vocab_size", "the pack's vocabulary is larger than the model's");
    w.records.push_back({pack.name, "probe", p, sha256_file(p), static_cast<std::int64_t>(pack.sentences.size())});
    w.probes.push_back(std::move(pack));
  }
  for (int l : spec.eval.layers)
    if (l > w.config.num_hidden_layers)
      fail(spec.path, "eval.probes.layers", "layer " + std::to_string(l) + " does not exist (the model has layers 0.." +
                                                std::to_string(w.config.num_hidden_layers) + ", 0 = embeddings)");
}

Worker::~Worker() = default;

std::uint64_t Worker::resident_bytes() const { return impl_->res->resident_bytes(); }
const std::vector<archive::TaskRecord>& Worker::task_records() const { return impl_->records; }
Worker::GatherTraffic Worker::gather_traffic() const {
  GatherTraffic t = impl_->traffic;
  t.model_bytes = static_cast<std::uint64_t>(impl_->gathered.numel()) * impl_->gathered.element_size();
  return t;
}

archive::ConfigResult Worker::run(const PlannedConfig& c, bool* dropped) {
  try {
    return run_agreed(c, dropped);
  } catch (const GroupFailure&) {
    throw;
  }
}

archive::ConfigResult Worker::run_agreed(const PlannedConfig& c, bool* dropped) {
  Impl& w = *impl_;
  const int world_rank = w.group_index * w.comm.size() + w.comm.rank();
  at::NoGradGuard no_grad;
  *dropped = false;
  archive::ConfigResult r;
  r.config = config_record(c);
  r.timing.config_id = c.id;
  r.timing.group = w.group_index;
  const auto t0 = Clock::now();

  // 1. This rank's tensors of the merged model, in the eval dtype; their distances from θ₀.
  std::vector<double> sq(w.names.size(), 0.0);
  std::vector<std::int64_t> digests;
  agreed(w.comm, "merge", [&] {
    inject_test_failure("merge", c.id, world_rank);
    w.merge_shard(c, sq);
    w.digest_shard(digests);
  });
  r.timing.merge_s = since(t0);

  // 2. Distance from the base, per tensor kind; cosines of the members' task vectors; the
  // fingerprint of the model about to be evaluated.
  r.stats.push_back(w.model_stats(c, sq));
  r.fingerprints.push_back(w.fingerprint(c, digests));
  if (w.group_drop()) {
    *dropped = true;
    return {};
  }

  // 3. The whole merged model on every rank of the group, in the eval dtype.
  const std::map<std::string, at::Tensor> full = w.gather_merged();

  // 4. Evaluation and probes, shared by the group (eval::evaluate deals the fixed blocks). Its
  // sums between rounds check the group's agreement first (share()), so a rank failing mid-way
  // meets its peers there.
  eval::EvalResult ev;
  agreed(w.comm, "eval", [&] {
    inject_test_failure("eval", c.id, world_rank);
    auto model = model::Decoder::create(
        w.config,
        [&](const std::string& n) {
          auto it = full.find(n);
          return it == full.end() ? at::Tensor() : it->second;
        },
        w.dtype, w.spec.base);
    ev = eval::evaluate(*model, w.tasks, w.probes, w.eval_opts, w.share());
  });
  if (ev.stopped) {
    *dropped = true;
    return {};
  }
  add_eval_rows(c.id, ev, w.spec.eval.probe_seeds, r);
  r.timing.eval_s = ev.eval_seconds;
  r.timing.probe_s = ev.probe_seconds;
  r.timing.total_s = since(t0);
  return r;
}

}  // namespace ms::sweep
