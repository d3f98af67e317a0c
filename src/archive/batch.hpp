// One append's rows, table by table: the writer turns a batch of ConfigResults into column
// buffers (checking every value against the format first), then writes and commits them together.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "format.hpp"
#include "mergesweep/archive/archive.hpp"

namespace ms::archive::format {

class Batch {
 public:
  // `committed`: the committed row count of every table, where this batch's rows will start (a
  // generation or item-run row records absolute offsets into the flat tables).
  Batch(std::string path, const std::map<std::string, std::uint64_t>& committed);
  // Every row of one config (throws ms::Error naming /table/column for a value the format cannot hold).
  void add(const ConfigResult& cr);
  // One /failures row; a message longer than the column is cut (ending in "...").
  void add_failure(const FailureRecord& f);
  std::vector<Rows> tables() const;  // in format order

 private:
  void add_stats(std::uint64_t id, const ModelStatRecord& s);
  void add_generation(std::uint64_t id, const GenerationRecord& g);
  void add_items(std::uint64_t id, const ItemOutcomes& it);
  void add_config(Rows& rows, const ConfigRecord& c);  // the /configs columns (also the first of /failures)
  std::string path_;
  std::uint64_t tokens_at_, text_at_, items_at_, docs_at_;
  Rows cf_, rs_, st_, pr_, tm_, gen_, gtok_, gtxt_, fl_, runs_, items_, docs_, fp_;
};

// The /generations/stop values.
bool valid_stop(const std::string& s);
// The /item_runs/kind values: "choice" (rows of /items) or "rolling" (rows of /item_docs).
bool valid_item_kind(const std::string& s);
// The /fingerprints/dtype values: the eval dtypes.
bool valid_fingerprint_dtype(const std::string& s);

}  // namespace ms::archive::format
