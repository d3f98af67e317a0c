#include "arch.hpp"

#include <nlohmann/json.hpp>

#include "mergesweep/core/error.hpp"
#include "mergesweep/model/decoder.hpp"

namespace ms::model {

const std::vector<std::string>& supported_model_types() {
  static const std::vector<std::string> kTypes = {"llama", "mistral", "qwen2", "qwen3"};
  return kTypes;
}

namespace detail {
namespace {

using json = nlohmann::json;

std::string supported_list() {
  std::string s;
  for (const auto& t : supported_model_types()) s += (s.empty() ? "" : ", ") + t;
  return s;
}

double number_field(const json& obj, const char* key, double fallback, const std::string& source,
                    const std::string& where) {
  if (!obj.contains(key) || obj[key].is_null()) return fallback;
  if (!obj[key].is_number() || !(obj[key].get<double>() > 0)) {
    fail(source, where + "." + key, "must be a positive number, got " + obj[key].dump());
  }
  return obj[key].get<double>();
}

// rope_scaling (transformers 4) or rope_parameters (transformers 5, which also moves rope_theta
// there). An absent or null entry means the default RoPE.
RopeSpec resolve_rope(const io::ModelConfig& c, const json& doc, const std::string& source) {
  RopeSpec r;
  r.theta = c.rope_theta;
  json scaling = nullptr;
  std::string where = "rope_scaling";
  if (doc.contains("rope_parameters") && doc["rope_parameters"].is_object()) {
    scaling = doc["rope_parameters"];
    where = "rope_parameters";
    r.theta = number_field(scaling, "rope_theta", r.theta, source, where);
  } else if (doc.contains("rope_scaling") && !doc["rope_scaling"].is_null()) {
    scaling = doc["rope_scaling"];
  } else if (!c.rope_scaling_json.empty() && c.rope_scaling_json != "null") {
    scaling = json::parse(c.rope_scaling_json, nullptr, /*allow_exceptions=*/false);
  }
  if (scaling.is_null()) return r;
  if (!scaling.is_object()) fail(source, where, "must be an object or null, got " + scaling.dump());
  std::string type = "default";
  for (const char* key : {"rope_type", "type"}) {
    if (scaling.contains(key) && scaling[key].is_string()) {
      type = scaling[key].get<std::string>();
      break;
    }
  }
  r.type = type;
  if (type == "default") return r;
  if (type == "linear" || type == "llama3") {
    if (!scaling.contains("factor")) fail(source, where + ".factor", "missing; rope type '" + type + "' needs it");
    r.factor = number_field(scaling, "factor", 1.0, source, where);
  }
  if (type == "linear") return r;
  if (type == "llama3") {
    r.low_freq_factor = number_field(scaling, "low_freq_factor", 1.0, source, where);
    r.high_freq_factor = number_field(scaling, "high_freq_factor", 4.0, source, where);
    r.original_max_position = static_cast<std::int64_t>(
        number_field(scaling, "original_max_position_embeddings", 8192, source, where));
    if (r.high_freq_factor == r.low_freq_factor) {
      fail(source, where, "high_freq_factor equals low_freq_factor; llama3 RoPE divides by their difference");
    }
    return r;
  }
  fail(source, where + ".rope_type",
       "'" + type + "' is not supported; supported: default, linear, llama3");
}

}  // namespace

ArchSpec resolve_arch(const io::ModelConfig& c, const std::string& source) {
  bool known = false;
  for (const auto& t : supported_model_types()) known = known || c.model_type == t;
  if (!known) {
    fail(source, "model_type", "'" + c.model_type + "' is not supported by the decoder forward; supported: " +
                                   supported_list());
  }
  for (auto [v, name] : {std::pair{c.hidden_size, "hidden_size"}, {c.intermediate_size, "intermediate_size"},
                         {c.num_hidden_layers, "num_hidden_layers"}, {c.num_attention_heads, "num_attention_heads"},
                         {c.num_key_value_heads, "num_key_value_heads"}, {c.head_dim, "head_dim"},
                         {c.vocab_size, "vocab_size"}}) {
    if (v <= 0) fail(source, name, "must be a positive integer, got " + std::to_string(v));
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    fail(source, "num_key_value_heads", std::to_string(c.num_key_value_heads) + " does not divide num_attention_heads " +
                                            std::to_string(c.num_attention_heads));
  }
  if (c.head_dim % 2 != 0) fail(source, "head_dim", "must be even for RoPE, got " + std::to_string(c.head_dim));

  // The raw text carries the fields the typed config does not (it is empty for configs built in
  // code, e.g. by the testbed; then the typed fields are all there is).
  json doc = json::object();
  if (!c.text.empty()) {
    doc = json::parse(c.text, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object()) fail(source, "", "config text is not a JSON object");
  }
  if (doc.contains("hidden_act") && doc["hidden_act"].is_string() && doc["hidden_act"] != "silu") {
    fail(source, "hidden_act", "'" + doc["hidden_act"].get<std::string>() + "' is not supported; expected 'silu'");
  }

  ArchSpec a;
  a.rope = resolve_rope(c, doc, source);
  if (c.model_type == "qwen2") {
    a.qkv_bias = true;  // Qwen2 attention: q/k/v with bias, o_proj without, whatever attention_bias says
  } else {
    a.qkv_bias = a.o_bias = c.attention_bias;
  }
  a.qk_norm = c.model_type == "qwen3";
  if (c.model_type == "llama" && doc.contains("mlp_bias") && doc["mlp_bias"].is_boolean()) {
    a.mlp_bias = doc["mlp_bias"].get<bool>();
  }
  if (c.model_type == "mistral" && doc.contains("sliding_window") && doc["sliding_window"].is_number_integer()) {
    a.sliding_window = doc["sliding_window"].get<std::int64_t>();
    if (a.sliding_window < 0) fail(source, "sliding_window", "must be positive or null");
  }
  if ((c.model_type == "qwen2" || c.model_type == "qwen3") && doc.contains("use_sliding_window") &&
      doc["use_sliding_window"] == true) {
    fail(source, "use_sliding_window", "true is not supported for " + c.model_type + " (layer-wise windows)");
  }
  return a;
}

}  // namespace detail
}  // namespace ms::model
