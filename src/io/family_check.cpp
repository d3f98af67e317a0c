#include "mergesweep/io/family_check.hpp"

#include <algorithm>
#include <cstdio>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/units.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "mergesweep/io/hub_cache.hpp"
#include "mergesweep/io/lora_adapter.hpp"

namespace ms::io {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string shape_text(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::string entry_text(const TensorEntry& e) { return std::string(dtype_name(e.dtype)) + " " + shape_text(e.shape); }

// How reports show a model: its folder name, or `org/name@commit` for a hub cache snapshot.
std::string folder_name(const std::string& path) {
  const HubSnapshot hub = hub_snapshot_of(path);
  if (!hub.repo.empty()) return hub.repo + "@" + hub.commit.substr(0, 7);
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const auto slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

bool is_input_embedding(const std::string& name) {
  return ends_with(name, "embed_tokens.weight") || ends_with(name, "wte.weight");
}
bool is_head(const std::string& name) { return name == "lm_head.weight"; }

const char* const kHead = "lm_head.weight";

std::string embedding_name(const HfModel& m) {
  for (const auto& n : m.tensor_names())
    if (is_input_embedding(n)) return n;
  return "";
}

// The file a tensor lives in (a shard of a sharded folder), for refusals.
std::string file_of(const HfModel& m, const std::string& name) {
  return m.find(name) != nullptr ? m.shard_of(name).path() : m.path();
}

// Where the checkpoint came from, when the caller named it: " (checkpoints[3])".
std::string origin(const std::vector<std::string>& fields, std::size_t k) {
  return k < fields.size() && !fields[k].empty() ? " (" + fields[k] + ")" : "";
}

FamilyMember summarize(const HfModel& m) {
  FamilyMember s;
  s.path = m.path();
  s.name = folder_name(m.path());
  if (const auto folded = folded_from(m.path())) {  // a LoRA adapter folded onto the base (lora_adapter.hpp)
    s.kind = "lora r=" + std::to_string(folded->rank);
    s.name = folder_name(folded->adapter);
  }
  bool has_head = false;
  for (const auto& name : m.tensor_names()) {
    const TensorEntry& e = m.require(name);
    ++s.dtypes[dtype_name(e.dtype)];
    if (is_input_embedding(name) && !e.shape.empty()) s.vocab_rows = e.shape[0];
    has_head = has_head || is_head(name);
  }
  s.tied_head = !has_head;
  s.peft_prefix_stripped = !m.stripped_prefix().empty();
  return s;
}

void require_mergeable(const HfModel& m, const std::string& name, const TensorEntry& e, const std::string& where) {
  if (dtype_is_mergeable(e.dtype)) return;
  fail(file_of(m, name), name,
       std::string("dtype ") + dtype_name(e.dtype) + " cannot be merged or evaluated" + where +
           ": expected a float dtype (BF16, F16, F32 or F64); convert the checkpoint");
}

// A shape mismatch, with what it most likely means for embeddings and heads.
[[noreturn]] void refuse_shape(const HfModel& base, const HfModel& ck, const std::string& name, const TensorEntry& b,
                               const TensorEntry& e, const std::string& where) {
  std::string why = "shape " + shape_text(e.shape) + " differs from the base's " + shape_text(b.shape) + " (" +
                    base.path() + ")" + where;
  if ((is_input_embedding(name) || is_head(name)) && !e.shape.empty() && !b.shape.empty() && e.shape[0] != b.shape[0])
    why += ": the vocabulary differs (" + std::to_string(e.shape[0]) + " rows against the base's " +
           std::to_string(b.shape[0]) + "; added or padded tokens). Rows are aligned by token string with tokenizer_source: base, union or a "
           "model (merge) or vocabulary: base (sweep), which needs every model's tokenizer.json";
  fail(file_of(ck, name), name, why);
}

// A tensor one side has and the other lacks: lm_head is the usual one (a tied head has none).
[[noreturn]] void refuse_presence(const HfModel& base, const HfModel& ck, const std::string& name, bool missing,
                                  const std::string& where) {
  std::string why = missing ? "tensor of the base (" + base.path() + ", " + entry_text(base.require(name)) +
                                  ") is missing from this checkpoint" + where
                            : "tensor (" + entry_text(ck.require(name)) + ") is not in the base " + base.path() + where;
  if (is_head(name))
    why += missing ? ": the checkpoint ties its head to the input embedding where the base has its own"
                   : ": the checkpoint has its own head where the base ties it to the input embedding";
  fail(missing ? ck.path() : file_of(ck, name), name, why);
}

}  // namespace

bool is_vocab_tensor(const std::string& name) { return is_input_embedding(name) || is_head(name); }

std::string source_of(const HfModel& m, const std::string& name) {
  if (name == kHead && m.find(kHead) == nullptr) return embedding_name(m);
  return name;
}

bool is_ignored_buffer(const std::string& name) {
  // transformers recomputes these from the config; older exports saved them as buffers
  return ends_with(name, "rotary_emb.inv_freq") || ends_with(name, "rotary_emb.cos_cached") ||
         ends_with(name, "rotary_emb.sin_cached");
}

bool dtype_is_mergeable(DType d) { return d == DType::BF16 || d == DType::F16 || d == DType::F32 || d == DType::F64; }

std::string FamilyMember::treatment() const {
  std::string t = widened > 0 ? "widened to float32 (" + std::to_string(widened) + " tensors)" : "as stored";
  if (kind.rfind("lora", 0) == 0) t = "folded onto the base, " + t;
  if (factored)
    t += "; held factored (A, B, saved tensors: " + format_bytes(held_bytes) + " against " + format_bytes(merged_bytes) +
         " folded), each folded tensor formed when a merge reads it";
  if (ignored > 0) t += ", " + std::to_string(ignored) + " extra buffers ignored";
  if (peft_prefix_stripped) t += ", PEFT prefix 'base_model.model.' stripped";
  if (head_from_embedding) t += ", tied head (its lm_head is its embedding)";
  if (aligned_to_rows > 0)
    t += ", vocabulary aligned by token to the merged " + std::to_string(aligned_to_rows) + " rows (float32)";
  return t;
}

FamilyMember check_model(const HfModel& model) {
  for (const auto& name : model.tensor_names()) require_mergeable(model, name, model.require(name), "");
  FamilyMember s = summarize(model);
  for (const auto& name : model.tensor_names()) s.merged_bytes += model.require(name).nbytes();
  return s;
}

namespace {



std::vector<std::int64_t> shape_of(const HfModel& m, const std::string& name) {
  const std::string src = source_of(m, name);
  return src.empty() ? std::vector<std::int64_t>{} : m.require(src).shape;
}


// The merged tensors: the base's, plus lm_head when any checkpoint has its own and the base ties.
void plan_outputs(const HfModel& base, const std::vector<const HfModel*>& cks, FamilyReport& r) {
  for (const auto& name : base.tensor_names()) r.tensor_names.push_back(name);
  const bool base_tied = base.find(kHead) == nullptr && !embedding_name(base).empty();
  bool any_head = false;
  for (const auto* ck : cks) any_head = any_head || ck->find(kHead) != nullptr;
  if (base_tied && any_head) {
    r.tensor_names.push_back(kHead);
    std::sort(r.tensor_names.begin(), r.tensor_names.end());
    r.unties_head = true;
  }
  for (const auto& name : r.tensor_names) {
    auto shape = shape_of(base, name);
    if (r.vocab && is_vocab_tensor(name) && !shape.empty()) shape[0] = r.vocab->rows;
    r.shapes.push_back(shape);
  }
}

bool is_aligned(const FamilyReport& r, std::size_t m, const std::string& name) {
  return r.vocab && is_vocab_tensor(name) && r.vocab->aligns(m);
}
// Rows aligned by token are formed in float32 and held so, an adapter's too.
bool held_factored(const FamilyReport& r, std::size_t m, const std::string& name) {
  return m > 0 && r.factored[m - 1] != nullptr && !is_aligned(r, m, name) && !is_aligned(r, 0, name);
}

// Bytes one model holds for a merged tensor: its stored bytes, or float32 rows once aligned; a
// factored adapter's A, B and saved tensor for it (nothing when it leaves the tensor: the base's).
std::uint64_t held_by(const FamilyReport& r, std::size_t m, const HfModel& model, const std::string& name,
                      std::size_t t) {
  const std::string src = source_of(model, name);
  const TensorEntry& e = model.require(src);
  if (held_factored(r, m, name)) {
    const LoraChange* c = r.factored[m - 1]->change(src);
    return c != nullptr ? c->nbytes() : 0;
  }
  if (!is_aligned(r, m, name)) return e.nbytes();
  std::uint64_t n = 4;
  for (const auto d : r.shapes[t]) n *= static_cast<std::uint64_t>(d);
  return n;
}

void check_checkpoint(const HfModel& base, const HfModel& ck, const FamilyReport& r, std::size_t k,
                      const std::string& where, FamilyMember& s) {
  for (std::size_t t = 0; t < r.tensor_names.size(); ++t) {
    const std::string& name = r.tensor_names[t];
    const std::string src = source_of(ck, name);
    const TensorEntry* e = src.empty() ? nullptr : ck.find(src);
    if (e == nullptr) refuse_presence(base, ck, name, /*missing=*/true, where);
    require_mergeable(ck, src, *e, where);
    const TensorEntry& b = base.require(source_of(base, name));
    const bool aligned = r.vocab && is_vocab_tensor(name);
    const bool fits = aligned ? e->shape.size() == b.shape.size() && e->shape.size() == 2 && e->shape[1] == b.shape[1]
                              : e->shape == b.shape;
    if (!fits) refuse_shape(base, ck, src, b, *e, where);
    if (e->dtype != b.dtype) ++s.widened;
    s.merged_bytes += e->nbytes();
    s.head_from_embedding = s.head_from_embedding || src != name;
  }
  if (r.vocab && r.vocab->aligns(k + 1)) s.aligned_to_rows = r.vocab->rows;
  for (const auto& name : ck.tensor_names()) {
    if (std::binary_search(r.tensor_names.begin(), r.tensor_names.end(), name)) continue;
    if (is_ignored_buffer(name)) {
      ++s.ignored;
      continue;
    }
    refuse_presence(base, ck, name, /*missing=*/false, where);
  }
}

}  // namespace

FamilyReport check_family(const HfModel& base, const std::vector<const HfModel*>& checkpoints,
                          const std::vector<std::string>& fields, const VocabChoice& vocab) {
  FamilyReport r;
  for (const auto& name : base.tensor_names()) require_mergeable(base, name, base.require(name), " (the base)");
  r.base = summarize(base);
  std::vector<const HfModel*> models{&base};
  std::vector<std::int64_t> rows{r.base.vocab_rows};
  std::vector<std::string> model_fields{"base"};
  for (std::size_t k = 0; k < checkpoints.size(); ++k) {
    models.push_back(checkpoints[k]);
    rows.push_back(summarize(*checkpoints[k]).vocab_rows);
    model_fields.push_back(k < fields.size() ? fields[k] : "");
  }
  bool all_embed = r.base.vocab_rows >= 0;
  for (const auto n : rows) all_embed = all_embed && n >= 0;
  if (all_embed) r.vocab = plan_vocabulary(vocab, models, rows, model_fields);
  plan_outputs(base, checkpoints, r);
  for (std::size_t t = 0; t < r.tensor_names.size(); ++t) {
    r.held_bytes.push_back(held_by(r, 0, base, r.tensor_names[t], t));
    r.base.merged_bytes += r.held_bytes.back();
  }
  r.base.held_bytes = r.base.merged_bytes;
  r.folds.assign(r.tensor_names.size(), 0);
  for (std::size_t k = 0; k < checkpoints.size(); ++k) {
    FamilyMember s = summarize(*checkpoints[k]);
    check_checkpoint(base, *checkpoints[k], r, k, origin(fields, k), s);
    // A folded adapter is held factored (lora_adapter.hpp), once its folded folder is checked.
    if (auto fa = FactoredAdapter::of_folded(checkpoints[k]->path(), base.path()))
      r.factored.push_back(std::make_shared<const FactoredAdapter>(std::move(*fa)));
    else
      r.factored.push_back(nullptr);
    s.factored = r.factored.back() != nullptr;
    for (std::size_t t = 0; t < r.tensor_names.size(); ++t) {
      const std::uint64_t held = held_by(r, k + 1, *checkpoints[k], r.tensor_names[t], t);
      r.held_bytes[t] += held;
      s.held_bytes += held;
      if (!held_factored(r, k + 1, r.tensor_names[t])) continue;
      const LoraChange* c = r.factored.back()->change(source_of(*checkpoints[k], r.tensor_names[t]));
      if (c != nullptr && c->folds()) ++r.folds[t];
    }
    r.checkpoints.push_back(std::move(s));
  }
  return r;
}

FamilyReport check_family(const std::string& base, const std::vector<std::string>& checkpoints,
                          const std::vector<std::string>& fields, const VocabChoice& vocab) {
  const auto open = [](const std::string& p, const std::string& field) {
    if (!path_exists(p)) fail(p, field, "no such model folder");
    if (!is_directory(p)) fail(p, field, "is a file, not a model folder (config.json and model.safetensors)");
    return HfModel::open(p);
  };
  const HfModel b = open(base, "base");
  std::vector<HfModel> held;
  held.reserve(checkpoints.size());
  for (std::size_t k = 0; k < checkpoints.size(); ++k)
    held.push_back(open(checkpoints[k], k < fields.size() ? fields[k] : ""));
  std::vector<const HfModel*> ptrs;
  for (const auto& m : held) ptrs.push_back(&m);
  return check_family(b, ptrs, fields, vocab);
}

std::string describe_family(const FamilyReport& r) {
  std::string s = "family (" + std::to_string(r.checkpoints.size()) + " checkpoints; " +
                  std::to_string(r.tensor_names.size()) + " tensors merged)\n";
  char line[512];
  std::snprintf(line, sizeof line, "  %-4s %-22s %-18s %8s %-7s %-6s %10s  %s\n", "#", "model", "dtypes", "vocab", "head",
                "kind", "bytes", "treatment");
  s += line;
  const auto row = [&](const std::string& idx, const FamilyMember& m, const std::string& treatment) {
    std::string dt;
    for (const auto& [name, count] : m.dtypes) dt += (dt.empty() ? "" : "+") + name + (m.dtypes.size() > 1 ? "×" + std::to_string(count) : "");
    std::snprintf(line, sizeof line, "  %-4s %-22s %-18s %8s %-7s %-6s %10s  %s\n", idx.c_str(), m.name.c_str(), dt.c_str(),
                  m.vocab_rows < 0 ? "-" : std::to_string(m.vocab_rows).c_str(), m.tied_head ? "tied" : "untied",
                  m.kind.c_str(), format_bytes(m.merged_bytes).c_str(), treatment.c_str());
    s += line;
  };
  row("base", r.base, "reference (τ = θ − θ₀ is formed against it)");
  for (std::size_t k = 0; k < r.checkpoints.size(); ++k) row(std::to_string(k + 1), r.checkpoints[k], r.checkpoints[k].treatment());
  return s;
}

}  // namespace ms::io
