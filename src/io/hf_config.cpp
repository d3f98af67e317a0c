#include "mergesweep/io/hf_config.hpp"

#include <nlohmann/json.hpp>

#include "mergesweep/core/error.hpp"
#include "json_error.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "mergesweep/io/safetensors_header.hpp"

namespace ms::io {
namespace {

using json = nlohmann::json;

const char* const kKnownDecoders[] = {"llama", "mistral", "qwen2", "qwen3"};

std::int64_t get_positive_int(const json& doc, const char* key, bool required, const std::string& path) {
  if (!doc.contains(key) || doc[key].is_null()) {
    if (required) fail(path, key, "missing; a decoder config must give it as a positive integer");
    return 0;
  }
  const json& v = doc[key];
  if (!v.is_number_integer() || v.get<std::int64_t>() <= 0) {
    fail(path, key, "must be a positive integer, got " + v.dump());
  }
  return v.get<std::int64_t>();
}

double get_positive_number(const json& doc, const char* key, double fallback, const std::string& path) {
  if (!doc.contains(key) || doc[key].is_null()) return fallback;
  const json& v = doc[key];
  if (!v.is_number() || !(v.get<double>() > 0)) fail(path, key, "must be a positive number, got " + v.dump());
  return v.get<double>();
}

bool get_bool(const json& doc, const char* key, bool fallback, const std::string& path) {
  if (!doc.contains(key) || doc[key].is_null()) return fallback;
  if (!doc[key].is_boolean()) fail(path, key, "must be true or false, got " + doc[key].dump());
  return doc[key].get<bool>();
}

// An id or a list of ids (HF configs use both); absent or null: none.
std::vector<std::int64_t> get_ids(const json& doc, const char* key, const std::string& path) {
  if (!doc.contains(key) || doc[key].is_null()) return {};
  const json& v = doc[key];
  auto id = [&](const json& x) {
    if (!x.is_number_integer() || x.get<std::int64_t>() < 0)
      fail(path, key, "must be a token id or a list of token ids, got " + v.dump());
    return x.get<std::int64_t>();
  };
  if (!v.is_array()) return {id(v)};
  std::vector<std::int64_t> out;
  for (const auto& x : v) out.push_back(id(x));
  return out;
}

}  // namespace

bool ModelConfig::is_known_decoder() const {
  for (const char* t : kKnownDecoders) {
    if (model_type == t) return true;
  }
  return false;
}

model::ArchDims arch_dims(const ModelConfig& c) {
  model::ArchDims d;
  d.vocab = c.vocab_size, d.hidden = c.hidden_size, d.ffn = c.intermediate_size, d.layers = c.num_hidden_layers;
  d.heads = c.num_attention_heads, d.kv_heads = c.num_key_value_heads, d.head_dim = c.head_dim;
  d.tied = c.tie_word_embeddings;
  return d;
}

ModelConfig parse_model_config(const std::string& text, const std::string& path) {
  if (const auto bad = find_invalid_utf8(text); bad != std::string::npos) {
    fail(path, "", "not valid UTF-8 (byte " + std::to_string(bad) + ")");
  }
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {  // parse errors and number overflow alike
    fail(path, "", "invalid JSON: " + detail::json_error_text(e));
  }
  if (!doc.is_object()) fail(path, "", std::string("config must be a JSON object, got ") + doc.type_name());
  ModelConfig c;
  c.text = text;
  if (!doc.contains("model_type") || !doc["model_type"].is_string() || doc["model_type"].get<std::string>().empty()) {
    fail(path, "model_type", "missing or not a string; expected e.g. \"llama\"");
  }
  c.model_type = doc["model_type"].get<std::string>();
  if (doc.contains("architectures") && !doc["architectures"].is_null()) {
    const json& a = doc["architectures"];
    if (!a.is_array()) fail(path, "architectures", "must be a list of strings, got " + a.dump());
    for (const auto& s : a) {
      if (!s.is_string()) fail(path, "architectures", "must be a list of strings, got " + a.dump());
      c.architectures.push_back(s.get<std::string>());
    }
  }
  const bool req = c.is_known_decoder();
  c.hidden_size = get_positive_int(doc, "hidden_size", req, path);
  c.intermediate_size = get_positive_int(doc, "intermediate_size", req, path);
  c.num_hidden_layers = get_positive_int(doc, "num_hidden_layers", req, path);
  c.num_attention_heads = get_positive_int(doc, "num_attention_heads", req, path);
  c.num_key_value_heads = get_positive_int(doc, "num_key_value_heads", false, path);
  c.head_dim = get_positive_int(doc, "head_dim", false, path);
  c.vocab_size = get_positive_int(doc, "vocab_size", req, path);
  c.max_position_embeddings = get_positive_int(doc, "max_position_embeddings", false, path);
  c.rms_norm_eps = get_positive_number(doc, "rms_norm_eps", 1e-6, path);
  c.rope_theta = get_positive_number(doc, "rope_theta", 10000.0, path);
  c.tie_word_embeddings = get_bool(doc, "tie_word_embeddings", false, path);
  c.attention_bias = get_bool(doc, "attention_bias", c.model_type == "qwen2", path);
  c.eos_token_ids = get_ids(doc, "eos_token_id", path);
  if (doc.contains("torch_dtype") && doc["torch_dtype"].is_string()) c.torch_dtype = doc["torch_dtype"].get<std::string>();
  else if (doc.contains("dtype") && doc["dtype"].is_string()) c.torch_dtype = doc["dtype"].get<std::string>();
  c.rope_scaling_json = doc.contains("rope_scaling") ? doc["rope_scaling"].dump() : "null";

  if (c.num_attention_heads > 0) {
    if (c.num_key_value_heads == 0) c.num_key_value_heads = c.num_attention_heads;
    if (c.num_attention_heads % c.num_key_value_heads != 0) {
      fail(path, "num_key_value_heads", std::to_string(c.num_key_value_heads) + " does not divide num_attention_heads " +
                                            std::to_string(c.num_attention_heads));
    }
    if (c.head_dim == 0 && c.hidden_size > 0) {
      if (c.hidden_size % c.num_attention_heads != 0) {
        fail(path, "hidden_size", std::to_string(c.hidden_size) + " is not divisible by num_attention_heads " +
                                      std::to_string(c.num_attention_heads) + " and no head_dim is given");
      }
      c.head_dim = c.hidden_size / c.num_attention_heads;
    }
  }
  return c;
}

ModelConfig read_model_config(const std::string& path) {
  if (!path_exists(path)) fail(path, "", "missing; a model folder needs a config.json");
  return parse_model_config(read_text_file(path), path);
}

std::string llama_config_json(const LlamaConfigFields& f) {
  nlohmann::ordered_json c;
  c["architectures"] = {"LlamaForCausalLM"};
  c["model_type"] = "llama";
  c["hidden_size"] = f.hidden;
  c["intermediate_size"] = f.intermediate;
  c["num_hidden_layers"] = f.layers;
  c["num_attention_heads"] = f.heads;
  c["num_key_value_heads"] = f.kv_heads;
  if (f.head_dim) c["head_dim"] = f.hidden / f.heads;
  c["vocab_size"] = f.vocab;
  c["max_position_embeddings"] = f.max_positions;
  c["rms_norm_eps"] = 1e-5;
  c["rope_theta"] = 10000.0;
  c["hidden_act"] = "silu";
  c["tie_word_embeddings"] = f.tied;
  c["attention_bias"] = false;
  if (f.mlp_bias_and_init) {
    c["mlp_bias"] = false;
    c["initializer_range"] = 0.02;
  }
  c["bos_token_id"] = f.bos;
  c["eos_token_id"] = f.eos;
  if (f.pad) c["pad_token_id"] = *f.pad;
  c["torch_dtype"] = f.dtype;
  return c.dump(2) + "\n";
}

}  // namespace ms::io
