// mergesweep testbed: tokenizer, packs, base training, fine-tunes, HF folders, testbed.json.
// Everything is written under a temporary sibling of the output folder and renamed at the end.
#include "mergesweep/testbed/testbed.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "mergesweep/core/error.hpp"
#include "mergesweep/core/version.hpp"
#include "mergesweep/eval/probes.hpp"
#include "mergesweep/eval/task_pack.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/hf_model.hpp"
#include "packs.hpp"
#include "trainer.hpp"

namespace ms::testbed {
namespace {

// ATen's thread count changes how reductions split, hence the bits of the result: training runs
// with a fixed count (restored afterwards, even on error).
class ThreadScope {
 public:
  explicit ThreadScope(int n) : saved_(at::get_num_threads()) { at::set_num_threads(n); }
  ~ThreadScope() { at::set_num_threads(saved_); }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int saved_;
};

// The default recipe (docs/testbed.md, "Training", says why). ft-00..08 are general fine-tunes
// (ft-00 "instruct", ft-01 "math", ft-08 "code": the pipeline demo's parents):
// the whole mixture with a moderate emphasis on a few families, each with its own learning rate,
// length and data order, so their task vectors share a general component and differ in
// specifics. ft-09..11 are narrow: 85% of every batch from one family, decayed schedule: task
// vectors that forget part of the rest. General ones keep a constant learning rate after warm-up, so
// each ends at a noisy point of the basin that averaging (the soup) smooths out. `scale`
// shortens every run (the tiny preset).
std::vector<FineTuneSpec> default_fine_tunes(double scale) {
  auto steps = [scale](int n) { return std::max(1, static_cast<int>(n * scale)); };
  using V = std::vector<std::string>;
  return {
      {V{"copy", "reverse", "brackets", "gen_reverse"}, 0.3, 3.0e-3, steps(240), 1.0, "instruct"},
      {V{"arith", "sequence", "count", "gen_digitsum"}, 0.5, 3.0e-3, steps(240), 1.0, "math"},
      {V{"sort"}, 0.4, 2.5e-3, steps(220), 1.0, "general"},
      {V{"lookup"}, 0.4, 4.0e-3, steps(250), 1.0, "general"},
      {V{"arith"}, 0.4, 3.5e-3, steps(230), 1.0, "general"},
      {V{"copy", "sort"}, 0.4, 2.5e-3, steps(260), 1.0, "general"},
      {V{"reverse"}, 0.4, 3.5e-3, steps(240), 1.0, "general"},
      {V{"count", "lookup"}, 0.4, 3.0e-3, steps(220), 1.0, "general"},
      {V{"brackets", "sort"}, 0.5, 4.0e-3, steps(240), 1.0, "code"},
      {V{"arith"}, 0.85, 4.0e-3, steps(250), 0.1, "narrow"},
      {V{"reverse"}, 0.85, 4.0e-3, steps(250), 0.1, "narrow"},
      {V{"brackets"}, 0.85, 4.0e-3, steps(250), 0.1, "narrow"},
  };
}

void check_options(const TestbedOptions& o) {
  auto positive = [](int v, const char* what) {
    if (v <= 0) fail("", what, "must be positive, found " + std::to_string(v));
  };
  positive(o.hidden, "hidden");
  positive(o.layers, "layers");
  positive(o.heads, "heads");
  positive(o.kv_heads, "kv_heads");
  positive(o.batch, "batch");
  positive(o.train_threads, "train_threads");
  positive(o.train_workers, "train_workers");
  if (o.hidden % o.heads != 0 || (o.hidden / o.heads) % 2 != 0)
    fail("", "heads", "hidden size must split into heads of an even size");
  if (o.heads % o.kv_heads != 0) fail("", "kv_heads", "must divide the number of heads");
  if (o.task_items <= 0 || o.task_items % 4 != 0) fail("", "task_items", "must be a positive multiple of 4");
  if (o.probe_train <= 0 || o.probe_dev <= 0 || o.probe_test <= 0) fail("", "probe sizes", "must be positive");
  if (o.dtype != "float32" && o.dtype != "bfloat16") fail("", "dtype", "'" + o.dtype + "' is not float32 or bfloat16");
  if (o.fine_tunes.empty() || o.fine_tunes.size() > 100) fail("", "fine_tunes", "need 1 to 100 fine-tunes");
  for (const auto& ft : o.fine_tunes) {
    if (ft.families.empty()) fail("", "fine_tunes", "a fine-tune emphasises no family");
    for (const auto& f : ft.families) task_family(f);
  }
}

std::vector<double> fine_tune_mixture(const FineTuneSpec& ft) {
  const auto& fams = task_families();
  std::vector<double> w(fams.size(), (1.0 - ft.emphasis) / static_cast<double>(fams.size()));
  for (std::size_t i = 0; i < fams.size(); ++i) {
    for (const auto& f : ft.families) {
      if (fams[i].name == f) w[i] += ft.emphasis / static_cast<double>(ft.families.size());
    }
  }
  return w;
}

void write_model(const std::string& dir, const Params& params, const TestbedOptions& o, const std::string& config,
                 const CharTokenizer& tok) {
  const at::ScalarType type = o.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
  std::vector<io::TensorSpec> specs;
  for (const auto& [n, t] : params)
    specs.push_back({n, type == at::kBFloat16 ? io::DType::BF16 : io::DType::F32, t.sizes().vec()});
  io::HfModelWriter w(dir, specs, 5'000'000'000ull);
  for (const auto& [n, t] : params) w.write(n, t.detach().to(type).contiguous());
  w.set_config_text(config);
  w.add_text_file("generation_config.json", "{\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n  \"pad_token_id\": 0\n}\n");
  w.add_text_file("tokenizer.json", tok.tokenizer_json());
  w.add_text_file("tokenizer_config.json", tok.tokenizer_config_json(o.max_positions));
  w.add_text_file("special_tokens_map.json", tok.special_tokens_map_json());
  w.commit();
}

// The weights as written (bf16 rounding included), for the accuracies recorded in testbed.json.
Params as_written(const Params& p, const TestbedOptions& o) {
  if (o.dtype != "bfloat16") return p;
  Params out;
  for (const auto& [n, t] : p) out.emplace_back(n, t.to(at::kBFloat16).to(at::kFloat));
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TestbedOptions testbed_preset(const std::string& name) {
  TestbedOptions o;
  if (name == "default") {
    o.fine_tunes = default_fine_tunes(1.0);
    return o;
  }
  if (name == "tiny") {
    o.hidden = 32;
    o.intermediate = 64;
    o.layers = 1;
    o.heads = 2;
    o.kv_heads = 1;
    o.batch = 32;
    o.base_steps = 20;
    o.task_items = 16;
    o.probe_train = 24;
    o.probe_dev = 8;
    o.probe_test = 12;
    o.fine_tunes = default_fine_tunes(10.0 / 300);
    return o;
  }
  fail("", "--preset", "unknown preset '" + name + "'; expected default or tiny");
}

namespace {

using Say = std::function<void(const std::string&)>;

struct TrainedModel {
  Params params;
  double final_loss = 0;
};

// The folder of a family's pack: multiple-choice packs in tasks/, generation packs in generate/
// (specs that glob tasks/*.h5 keep their multiple-choice-only eval set).
std::string pack_path(const TaskFamily& f) {
  return (f.generation ? "generate/" : "tasks/") + f.name + ".h5";
}

std::string fine_tune_name(std::size_t k) {
  char name[32];  // room for any size_t
  std::snprintf(name, sizeof name, "ft-%02zu", k);
  return name;
}

std::function<void(int, double)> step_logger(const Say& say, const std::string& name, int total,
                                             std::chrono::steady_clock::time_point t0) {
  return [say, name, total, t0](int step, double loss) {
    if ((step + 1) % 100 == 0 || step + 1 == total) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%s step %d/%d loss %.4f (%.0f s)", name.c_str(), step + 1, total, loss,
                    seconds_since(t0));
      say(buf);
    }
  };
}

// Trains every fine-tune from `base` on `o.train_workers` threads. Each fine-tune is one
// single-threaded computation (its own data stream, its own ATen thread count), so the result
// does not depend on how many run at once; the first error is rethrown after all threads end.
std::vector<TrainedModel> train_fine_tunes(const Params& base, const io::ModelConfig& cfg, const CharTokenizer& tok,
                                           const std::vector<std::set<std::string>>& held_out,
                                           const TestbedOptions& o, const Say& say,
                                           std::chrono::steady_clock::time_point t0) {
  std::vector<TrainedModel> out(o.fine_tunes.size());
  std::atomic<std::size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  auto work = [&] {
    at::set_num_threads(o.train_threads);  // OpenMP's thread count is per thread: set it here too
    for (std::size_t k = next++; k < o.fine_tunes.size() && !failed; k = next++) {
      try {
        const FineTuneSpec& ft = o.fine_tunes[k];
        const std::string name = fine_tune_name(k);
        Params p = clone_params(base);
        const BatchSource data(tok, fine_tune_mixture(ft), held_out, o.seed, "train/" + name);
        const TrainSpec spec{ft.steps, ft.lr, o.weight_decay, 0.1, o.batch, ft.lr_floor};
        out[k].final_loss = train(p, cfg, data, spec, step_logger(say, name, ft.steps, t0));
        out[k].params = std::move(p);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  const int workers = std::min<int>(o.train_workers, static_cast<int>(o.fine_tunes.size()));
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
  return out;
}

nlohmann::ordered_json testbed_json(const TestbedOptions& o, const CharTokenizer& tok, const Params& base,
                                    double base_loss, const std::vector<TrainedModel>& fts,
                                    const nlohmann::ordered_json& accuracy, const nlohmann::ordered_json& exact) {
  nlohmann::ordered_json j;
  j["format"] = "mergesweep-testbed";
  j["format_version"] = 1;
  j["recipe_version"] = testbed_recipe_version();
  j["seed"] = o.seed;
  j["model"] = {{"architecture", "LlamaForCausalLM"}, {"hidden_size", o.hidden}, {"intermediate_size", o.intermediate},
                {"num_hidden_layers", o.layers}, {"num_attention_heads", o.heads},
                {"num_key_value_heads", o.kv_heads}, {"vocab_size", tok.vocab_size()},
                {"max_position_embeddings", o.max_positions}, {"dtype", o.dtype}};
  std::int64_t n_params = 0;
  for (const auto& [n, t] : base) n_params += t.numel();
  j["model"]["parameters"] = n_params;
  j["training"] = {{"optimizer", "AdamW (betas 0.9/0.98, eps 1e-8, grad-norm clip 1.0, no decay on norms)"},
                   {"schedule", "10% linear warm-up, cosine decay to lr_floor of the peak"},
                   {"batch", o.batch}, {"weight_decay", o.weight_decay}, {"threads", o.train_threads},
                   {"loss", "cross-entropy on the answer tokens (' ' + answer, then EOS for generation families)"}};
  j["base"] = {{"steps", o.base_steps}, {"lr", o.base_lr}, {"mixture", "uniform over families"}, {"final_loss", base_loss}};
  nlohmann::ordered_json ftj = nlohmann::ordered_json::array();
  for (std::size_t k = 0; k < fts.size(); ++k) {
    const FineTuneSpec& ft = o.fine_tunes[k];
    ftj.push_back({{"name", fine_tune_name(k)}, {"role", ft.role}, {"families", ft.families},
                   {"emphasis", ft.emphasis}, {"lr", ft.lr}, {"lr_floor", ft.lr_floor}, {"steps", ft.steps},
                   {"final_loss", fts[k].final_loss}});
  }
  j["fine_tunes"] = ftj;
  nlohmann::ordered_json fam = nlohmann::ordered_json::array();
  for (const auto& f : task_families())
    fam.push_back({{"name", f.name}, {"description", f.description}, {"task_pack", pack_path(f)},
                   {"output_type", f.generation ? "generate_until" : "multiple_choice"}, {"items", o.task_items},
                   {"choices", f.generation ? 0 : 4}});
  j["families"] = fam;
  nlohmann::ordered_json pr = nlohmann::ordered_json::array();
  for (const auto& p : probe_properties())
    pr.push_back({{"name", p.name}, {"description", p.description}, {"probe_pack", "probes/" + p.name + ".h5"},
                  {"labels", p.label_names}, {"train", o.probe_train}, {"dev", o.probe_dev}, {"test", o.probe_test}});
  j["probes"] = pr;
  j["tokenizer"] = {{"type", "character-level WordLevel"}, {"vocab_size", tok.vocab_size()},
                    {"specials", {"<pad>", "<s>", "</s>", "<unk>"}}, {"adds_bos", false}};
  j["accuracy"] = accuracy;  // acc of every model on every multiple-choice pack (testbed's own scorer)
  // Exact match of every model's greedy generations on every generation pack (the engine's
  // generation): the generated ids before EOS are " " + answer.
  j["exact_match"] = exact;
  j["mergesweep_version"] = kVersion;
  return j;
}

// One pack per family, in task_families() order; answers[f]: a generation pack's answers.
struct Packs {
  std::vector<eval::TaskPack> packs;
  std::vector<std::vector<std::string>> answers;
};

// Task packs (whose prompts are then held out of every training batch) and probe packs.
Packs write_packs(const std::string& tmp, const CharTokenizer& tok, const TestbedOptions& o,
                  std::vector<std::set<std::string>>& held_out) {
  const auto& fams = task_families();
  held_out.assign(fams.size(), {});
  Packs out;
  out.answers.resize(fams.size());
  for (std::size_t f = 0; f < fams.size(); ++f) {
    out.packs.push_back(fams[f].generation
                            ? make_generation_pack(fams[f], tok, o.task_items, o.seed, &out.answers[f], &held_out[f])
                            : make_task_pack(fams[f], tok, o.task_items, o.seed, &held_out[f]));
    eval::write_task_pack(tmp + "/" + pack_path(fams[f]), out.packs.back());
  }
  for (const auto& prop : probe_properties()) {
    eval::write_probe_pack(tmp + "/probes/" + prop.name + ".h5",
                           make_probe_pack(prop, tok, o.probe_train, o.probe_dev, o.probe_test, o.seed));
  }
  return out;
}

// Exact match of greedy generation: the generated ids before the stop token are " " + answer.
double exact_match(const Params& p, const io::ModelConfig& cfg, const eval::TaskPack& pack,
                   const std::vector<std::string>& answers, const CharTokenizer& tok) {
  const auto generated = greedy_generate(p, cfg, pack);
  std::size_t correct = 0;
  for (std::size_t i = 0; i < generated.size(); ++i) correct += generated[i] == tok.encode(" " + answers[i]) ? 1 : 0;
  return generated.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(generated.size());
}

}  // namespace

int testbed_recipe_version() { return 3; }

void write_testbed(const std::string& out_dir, const TestbedOptions& o) {
  check_options(o);
  if (io::path_exists(out_dir)) fail(out_dir, "", "already exists; refusing to overwrite");
  const auto t_start = std::chrono::steady_clock::now();
  auto say_mutex = std::make_shared<std::mutex>();
  const Say say = [&o, say_mutex](const std::string& s) {
    const std::lock_guard<std::mutex> lock(*say_mutex);
    if (o.progress) o.progress(s);
  };
  const CharTokenizer tok;
  const std::string config_text = llama_config_text(o, tok.vocab_size());
  const io::ModelConfig cfg = io::parse_model_config(config_text, "testbed config.json");
  const auto& fams = task_families();

  const std::string tmp = io::temp_sibling(out_dir);
  std::filesystem::create_directories(tmp + "/tasks");
  std::filesystem::create_directories(tmp + "/probes");
  std::filesystem::create_directories(tmp + "/generate");
  try {
    ThreadScope threads(o.train_threads);
    std::vector<std::set<std::string>> held_out;
    const Packs packs = write_packs(tmp, tok, o, held_out);
    say("wrote " + std::to_string(fams.size()) + " task packs and " + std::to_string(probe_properties().size()) +
        " probe packs");

    // acc on the multiple-choice packs, exact match of greedy generation on the generation packs.
    nlohmann::ordered_json accuracy, exact;
    auto record = [&](const std::string& name, const Params& p) {
      const Params w = as_written(p, o);
      nlohmann::ordered_json row, em_row;
      std::string line = name + " acc:";
      for (std::size_t f = 0; f < fams.size(); ++f) {
        const double a = fams[f].generation ? exact_match(w, cfg, packs.packs[f], packs.answers[f], tok)
                                            : choice_accuracy(w, cfg, packs.packs[f]);
        (fams[f].generation ? em_row : row)[fams[f].name] = a;
        char buf[48];
        std::snprintf(buf, sizeof buf, " %s %.2f", fams[f].name.c_str(), a);
        line += buf;
      }
      accuracy[name] = row;
      exact[name] = em_row;
      say(line);
    };

    // Base: the uniform mixture, stopped early, so every family has headroom.
    Params base = init_params(cfg, o.seed);
    const BatchSource base_data(tok, std::vector<double>(fams.size(), 1.0), held_out, o.seed, "train/base");
    const TrainSpec base_spec{o.base_steps, o.base_lr, o.weight_decay, 0.1, o.batch};
    const double base_loss = train(base, cfg, base_data, base_spec, step_logger(say, "base", o.base_steps, t_start));
    write_model(tmp + "/base", base, o, config_text, tok);
    record("base", base);

    const std::vector<TrainedModel> fts = train_fine_tunes(base, cfg, tok, held_out, o, say, t_start);
    for (std::size_t k = 0; k < fts.size(); ++k) {
      write_model(tmp + "/" + fine_tune_name(k), fts[k].params, o, config_text, tok);
      record(fine_tune_name(k), fts[k].params);
    }
    const auto j = testbed_json(o, tok, base, base_loss, fts, accuracy, exact);
    io::write_text_file(tmp + "/testbed.json", j.dump(2) + "\n");
    io::rename_into_place(tmp, out_dir);
    char buf[96];
    std::snprintf(buf, sizeof buf, "done in %.1f s", seconds_since(t_start));
    say(buf);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace ms::testbed
