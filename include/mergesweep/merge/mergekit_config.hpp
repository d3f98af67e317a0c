// mergekit's YAML merge configuration, read into a StreamingJob: merge_method, base_model, models
// or slices (sources, layer_range), parameters at every level with mergekit's filters and
// gradients (resolved per tensor, src/merge/mergekit_settings.hpp), dtype, out_dtype,
// tokenizer_source (base, union or a model: io/vocabulary.hpp), int8_mask (accepted; no effect).
// mergesweep's own method names and parameters cover the methods mergekit lacks. Any other key, and
// what mergesweep does not do (chat_template, tokenizer:, modules), is an error naming it and its line.
// docs/methods.md, "mergekit's configuration language".
#pragma once

#include <string>

#include "mergesweep/merge/merge_streaming.hpp"

namespace ms::merge {

// Relative model paths are resolved against the current directory, as mergekit does.
StreamingJob read_mergekit_config(const std::string& path);
StreamingJob parse_mergekit_config(const std::string& text, const std::string& path);

}  // namespace ms::merge
