// A Hugging Face model folder: config.json plus one model.safetensors or shards listed in
// model.safetensors.index.json. Reading validates the index (shard paths stay inside the folder,
// every listed tensor exists where the index says, no tensor unlisted or listed twice).
// Writing builds the whole folder under a temporary name and renames it at the end.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mergesweep/io/hf_config.hpp"
#include "mergesweep/io/safetensors_file.hpp"
#include "mergesweep/io/safetensors_writer.hpp"

namespace at { class Tensor; }

namespace ms::io {

inline constexpr const char* kIndexFile = "model.safetensors.index.json";
inline constexpr const char* kSingleFile = "model.safetensors";

// Files copied unchanged from a source model folder when writing a merged model.
const std::vector<std::string>& passthrough_file_names();

class HfModel {
 public:
  // `path` is a model folder, or a single .safetensors file (then there is no config).
  static HfModel open(const std::string& path);

  const std::string& path() const noexcept { return path_; }
  bool is_folder() const noexcept { return is_folder_; }
  const std::optional<ModelConfig>& config() const noexcept { return config_; }
  bool is_sharded() const noexcept { return !index_path_.empty(); }
  const std::string& index_path() const noexcept { return index_path_; }
  // metadata.total_size of the index, when present.
  std::optional<std::uint64_t> index_total_size() const noexcept { return index_total_size_; }
  const std::vector<std::shared_ptr<const SafetensorsFile>>& shards() const noexcept { return shards_; }

  std::vector<std::string> tensor_names() const;  // sorted
  std::size_t num_tensors() const noexcept { return where_.size(); }
  const TensorEntry* find(const std::string& name) const noexcept;
  const TensorEntry& require(const std::string& name) const;  // throws naming the model and tensor
  const SafetensorsFile& shard_of(const std::string& name) const;
  at::Tensor tensor(const std::string& name) const;  // zero-copy view
  std::uint64_t total_bytes() const noexcept;
  std::uint64_t total_params() const noexcept;
  // "base_model.model." when the stored names carried PEFT's prefix, which tensor_names(),
  // find() and require() leave out; empty otherwise.
  const std::string& stripped_prefix() const noexcept { return stripped_prefix_; }

 private:
  std::string path_;
  bool is_folder_ = false;
  std::optional<ModelConfig> config_;
  std::string index_path_;
  std::optional<std::uint64_t> index_total_size_;
  std::vector<std::shared_ptr<const SafetensorsFile>> shards_;
  std::map<std::string, std::pair<std::size_t, const TensorEntry*>> where_;
  std::string stripped_prefix_;
  void strip_peft_prefix();
};

// Writes a model folder shard by shard. Shards are planned up front from the specs (greedy in the
// given order, a tensor larger than the limit alone in its shard, as transformers does); tensors
// may then be written in any order. Nothing appears at `out_dir` until commit().
class HfModelWriter {
 public:
  HfModelWriter(std::string out_dir, std::vector<TensorSpec> specs, std::uint64_t max_shard_bytes,
                const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
  ~HfModelWriter();  // removes the temporary folder unless committed
  HfModelWriter(const HfModelWriter&) = delete;
  HfModelWriter& operator=(const HfModelWriter&) = delete;

  void write(const std::string& name, const void* data, std::uint64_t nbytes);
  void write(const std::string& name, const at::Tensor& tensor);  // contiguous copy if needed
  void set_config_text(std::string text) { config_text_ = std::move(text); }
  // Copies tokenizer and generation files that exist in `src_dir`.
  void copy_passthrough_files(const std::string& src_dir);
  void add_text_file(const std::string& name, std::string text);
  void commit();

  std::size_t num_shards() const noexcept { return shards_.size(); }

 private:
  std::string out_dir_;
  std::string tmp_dir_;
  std::vector<std::unique_ptr<SafetensorsWriter>> shards_;
  std::map<std::string, std::size_t> shard_of_;
  std::string config_text_;
  std::map<std::string, std::string> extra_files_;
  std::uint64_t total_size_ = 0;
  bool committed_ = false;
};

}  // namespace ms::io
