// Streaming merge for one-off merges: tensor by tensor from the mmapped checkpoints into output
// shards, so peak memory is about one output shard plus a few float32 tensors.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mergesweep/io/dtype.hpp"
#include "mergesweep/io/vocabulary.hpp"
#include "mergesweep/merge/merge.hpp"

namespace ms::merge {

struct TensorSettings;  // src/merge/mergekit_settings.hpp

struct StreamingJob {
  MergeRequest request;
  std::string base_path;                  // HF folder: θ₀, config and tokenizer come from it
  std::vector<std::string> member_paths;  // one per request.members
  std::string out_dir;
  std::string out_dtype;                  // "" = the base's dtype per tensor; else bfloat16|float16|float32
  std::uint64_t max_shard_bytes = 5'000'000'000ull;
  std::string source_file;                // the config the job came from, for messages
  // Where base_path and each member path were given ("base_model: line 2", "models[0].model:
  // line 4"), so a path that does not resolve is refused pointing at its line.
  std::string base_field;
  std::vector<std::string> member_fields;
  // How vocabularies that differ are merged (mergekit's tokenizer_source; default: refused).
  io::VocabChoice vocab;
  const DareMaskFn* dare_mask = nullptr;  // tests only
  // mergekit's settings that depend on the tensor (filters, gradients, slices): each tensor is
  // merged with its own resolved request (src/merge/mergekit_settings.hpp); null: `request` for all.
  std::shared_ptr<const TensorSettings> settings;
  // With slices, the layer the last one ends at: it must be the base's layer count.
  std::int64_t slices_end_layer = 0;
  // A layer stack (a method that stacks_layers, mergekit's passthrough over slices): the output's
  // decoder layers, slice by slice, each [first, end) of member `member`'s layers. Empty otherwise.
  struct StackSlice {
    std::size_t member = 0;
    std::int64_t first = 0, end = 0;
  };
  std::vector<StackSlice> stack;
  // Where tensors are merged: each tensor (block) is read on the CPU, moved there, merged, and
  // moved back to be written. The CPU runs the fused task-arithmetic pass; other devices the
  // generic kernels.
  c10::Device device = c10::Device(c10::DeviceType::CPU);
};

struct StreamingReport {
  std::size_t tensors = 0;
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;
  double seconds = 0;
  double l2_from_base = 0;  // ‖θ_merged − θ₀‖₂ over every tensor, in float32 compute precision
  bool has_l2 = true;       // false for a layer stack: its layers have no θ₀ to be measured from
};

// Checks every input (tensor names, shapes and dtypes agree across models), merges, checks the
// output is finite, writes an HF folder at out_dir atomically. `progress(done, total)` is called
// after each tensor when set. Throws ms::Error naming the model and tensor.
StreamingReport merge_streaming(const StreamingJob& job, const std::function<void(std::size_t, std::size_t)>& progress = {});
// The layer-stack form (job.stack not empty, src/merge/merge_layer_stack.cpp): merge_streaming
// hands such a job to it.
StreamingReport merge_layer_stack(const StreamingJob& job, const std::function<void(std::size_t, std::size_t)>& progress);

// The dtype names of the YAML/CLI ("bfloat16", "float16", "float32") -> safetensors dtype.
io::DType parse_output_dtype(const std::string& name, const std::string& file);

}  // namespace ms::merge
