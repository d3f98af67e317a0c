// One append's rows, table by table: the writer turns a batch of ConfigResults into column
// buffers (checking every value against the format first), then writes and commits them together.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format.hpp"
#include "mergesweep/archive/archive.hpp"

namespace ms::archive::format {

class Batch {
 public:
  // `tokens_at`, `text_at`: the committed row counts of /generation_tokens and /generation_text,
  // where this batch's runs will start (a generation row records absolute offsets).
  Batch(std::string path, std::uint64_t tokens_at, std::uint64_t text_at);
  // Every row of one config (throws ms::Error naming /table/column for a value the format cannot hold).
  void add(const ConfigResult& cr);
  // One /failures row; a message longer than the column is cut (ending in "...").
  void add_failure(const FailureRecord& f);
  std::vector<Rows> tables() const;  // in format order

 private:
  void add_stats(std::uint64_t id, const ModelStatRecord& s);
  void add_generation(std::uint64_t id, const GenerationRecord& g);
  void add_config(Rows& rows, const ConfigRecord& c);  // the /configs columns (also the first of /failures)
  std::string path_;
  std::uint64_t tokens_at_, text_at_;
  Rows cf_, rs_, st_, pr_, tm_, gen_, gtok_, gtxt_, fl_;
};

// The /generations/stop values.
bool valid_stop(const std::string& s);

}  // namespace ms::archive::format
