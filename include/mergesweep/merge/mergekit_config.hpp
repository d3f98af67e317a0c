// mergekit's YAML merge configuration, read into a StreamingJob. Supported keys: merge_method,
// base_model, models[].model, models[].parameters.{weight,density}, parameters (method parameters,
// and weight/density defaults for every model), dtype, out_dtype, tokenizer_source (base, union or a model: io/vocabulary.hpp),
// int8_mask (accepted; no effect, mergesweep computes in float32). mergesweep's own method names and
// parameters cover the methods mergekit lacks. Any other key is an error naming it and its line.
#pragma once

#include <string>

#include "mergesweep/merge/merge_streaming.hpp"

namespace ms::merge {

// Relative model paths are resolved against the current directory, as mergekit does.
StreamingJob read_mergekit_config(const std::string& path);
StreamingJob parse_mergekit_config(const std::string& text, const std::string& path);

}  // namespace ms::merge
