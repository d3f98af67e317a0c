// The archive's table layout (one group per table, one 1-D chunked extendible dataset per
// column) and the column buffers both the writer and the reader use. docs/formats.md describes
// the same layout for analysts; keep the two in step.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "h5/h5.hpp"
#include "mergesweep/archive/archive.hpp"

namespace ms::archive::format {

enum class Type { U64, I64, I32, U8, F64, F32, Str };

struct Column {
  std::string name;
  Type type;
  std::size_t len = 0;  // Str: fixed length in bytes (UTF-8, NUL-padded)
  std::size_t chunk_bytes = 4096;  // physical only (chunk_rows); the layout does not depend on it
  bool compress = false;           // shuffle + deflate (physical only: readers see the same values)
};

struct Table {
  std::string name;  // group name under the root
  std::vector<Column> columns;
  int since = 1;     // the format version that added the table
};

// The data tables of a format version, in the order they are written; then "commits"
// (commits_table()). Readers read every version from 1 to kFormatVersion; writers write the latest.
const std::vector<Table>& tables(int version = kFormatVersion);
// seq, time, then one row count per data table of that version (same names).
const Table& commits_table(int version = kFormatVersion);
const Table& table(const std::string& name);  // any version's table

// The l2_by_kind keys the model_stats table has columns for (l2_<kind>).
const std::vector<std::string>& l2_kinds();

std::size_t elem_size(const Column& c);
h5::ElemType elem_type(const Column& c);  // the HDF5 layer's element type of a column
std::size_t chunk_rows(const Column& c);

// One column's values for a run of rows, in the on-disk element layout.
struct ColumnBuf {
  const Column* col = nullptr;
  std::vector<char> data;
  std::size_t rows = 0;

  void u64(std::uint64_t v) { put(&v, 8); }
  void i64(std::int64_t v) { put(&v, 8); }
  void i32(std::int32_t v) { put(&v, 4); }
  void u8(std::uint8_t v) { put(&v, 1); }
  // Many rows at once: every byte of `s` as one row of a U8 column, every id as one I32 row.
  void bytes(const std::string& s) { put_many(s.data(), s.size(), 1); }
  void i32s(const std::vector<std::int32_t>& v) { put_many(v.data(), v.size(), 4); }
  void u8s(const std::vector<std::uint8_t>& v) { put_many(v.data(), v.size(), 1); }
  void i64s(const std::vector<std::int64_t>& v) { put_many(v.data(), v.size(), 8); }
  void f32s(const std::vector<float>& v) { put_many(v.data(), v.size(), 4); }
  void f64s(const std::vector<double>& v) { put_many(v.data(), v.size(), 8); }
  void f64(double v) { put(&v, 8); }
  // Throws ms::Error(file, "/table/column", ...) when longer than the column's width.
  void str(const std::string& s, const std::string& table, const std::string& file);

  std::uint64_t get_u64(std::size_t i) const { return get<std::uint64_t>(i); }
  std::int64_t get_i64(std::size_t i) const { return get<std::int64_t>(i); }
  std::int32_t get_i32(std::size_t i) const { return get<std::int32_t>(i); }
  std::uint8_t get_u8(std::size_t i) const { return get<std::uint8_t>(i); }
  double get_f64(std::size_t i) const { return get<double>(i); }
  float get_f32(std::size_t i) const { return get<float>(i); }
  // Rows [begin, begin + n) of a numeric column as a vector of its element type.
  template <class T>
  std::vector<T> slice(std::size_t begin, std::size_t n) const {
    std::vector<T> v(n);
    if (n) std::memcpy(v.data(), data.data() + begin * sizeof(T), n * sizeof(T));
    return v;
  }
  std::string get_str(std::size_t i) const;

 private:
  void put(const void* p, std::size_t n);
  void put_many(const void* p, std::size_t count, std::size_t width);
  template <class T>
  T get(std::size_t i) const {
    T v;
    std::memcpy(&v, data.data() + i * sizeof(T), sizeof(T));
    return v;
  }
};

// Rows of one table, column by column.
struct Rows {
  const Table* table = nullptr;
  std::vector<ColumnBuf> cols;
  explicit Rows(const Table& t);
  ColumnBuf& col(const std::string& name);
  const ColumnBuf& col(const std::string& name) const;
  std::size_t rows() const { return cols.empty() ? 0 : cols.front().rows; }
};

// Group/dataset path of a column: "/results/value".
std::string column_path(const Table& t, const Column& c);

// Creates the group and its empty extendible datasets.
void create_table(const h5::Handle& file, const Table& t, const std::string& path);
// Current length of each column's dataset (throws naming a missing group/column or a 2-D one).
std::vector<std::uint64_t> column_lengths(const h5::Handle& file, const Table& t, const std::string& path);
// Reads rows [0, n) of every column.
Rows read_rows(const h5::Handle& file, const Table& t, std::uint64_t n, const std::string& path);
// Extends every column to at least `offset + rows.rows()` (never shrinks) and writes the rows at
// `offset`, overwriting any uncommitted rows there.
void write_rows(const h5::Handle& file, const Rows& rows, std::uint64_t offset, const std::string& path);
// The same through datasets opened once (open_columns), for the writer's hot path.
std::vector<h5::Handle> open_columns(const h5::Handle& file, const Table& t, const std::string& path);
void write_rows(const std::vector<h5::Handle>& dsets, const Rows& rows, std::uint64_t offset, const std::string& path);

// The last complete /commits row: row counts of every data table after that commit.
struct Commit {
  std::int64_t seq = 0;  // 1-based row number in /commits; 0: none found
  double time = 0;       // Unix seconds
  int version = kFormatVersion;  // the archive's format version
  // Every table of the latest version; a table the archive's version lacks counts 0 rows.
  std::map<std::string, std::uint64_t> counts;
};
// Scans /commits backwards for the last row that is complete and consistent with the datasets'
// lengths (a row whose seq is unwritten or whose counts exceed the data is ignored).
Commit last_commit(const h5::Handle& file, const std::string& path, std::uint64_t* commit_rows_total = nullptr);

// The root attribute format_version, checked to be one this build reads (1..kFormatVersion).
int format_version(const h5::Handle& file, const std::string& path);
// Checks the root attributes and every group/column of that version exist; returns the version.
int check_structure(const h5::Handle& file, const std::string& path);

// Opens for reading: SWMR read first (works while a writer appends and after a writer was
// killed), then a plain read-only open. Errors name the file and say why (not HDF5, truncated...).
h5::Handle open_read(const std::string& path);
// One attempt of the above without recovery: an invalid handle and `err` set on failure.
h5::Handle try_open_read(const std::string& path, std::string& err);

std::string members_text(const std::vector<std::int32_t>& m);  // "1,4,7"
std::vector<std::int32_t> parse_members(const std::string& s, const std::string& path);

}  // namespace ms::archive::format
