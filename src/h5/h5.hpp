// The one HDF5 layer of mergesweep (internal: the archive and the task/probe packs use it; the
// public headers never see HDF5). It follows HighFive's shape on the C API:
//  - `Handle` owns one hid_t (move-only; the destructor closes and never throws);
//  - every C call's return is checked, and a failure throws ms::Error(file, field, what) with
//    the innermost message of HDF5's error stack appended;
//  - HDF5's own error printing is switched off by `silence_errors()`, which every entry point
//    that opens or creates a file calls, and so does any thread that uses a file opened by
//    another (the setting is per thread): our messages say what went wrong.
// Raw hid_t stays inside src/h5; callers hold Handles and call the functions below.
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ms::h5 {

// Owns one hid_t and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), close_(closer) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { close(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void close() noexcept;  // closes now (errors ignored), e.g. so the file can be renamed
  hid_t release() noexcept {  // gives up ownership without closing
    const hid_t id = id_;
    id_ = -1;
    return id;
  }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

// ---- Errors --------------------------------------------------------------------------------
// The one error-silencing guard: turns off HDF5's automatic error printing. Idempotent.
void silence_errors();
// The most specific message on HDF5's error stack ("" if none); clears the stack.
std::string take_error();
// Throws ms::Error(file, field, what + " (HDF5: <innermost message>)").
// What fail() says, in place of HDF5's message, when a write failed for lack of space (ENOSPC).
inline constexpr const char* kNoSpace = "no space left on device";
[[noreturn]] void fail(const std::string& file, const std::string& field, const std::string& what);
// Throws as fail() when `rc` < 0 (herr_t, htri_t and hid_t all signal failure that way).
void check(std::int64_t rc, const std::string& file, const std::string& field, const std::string& what);

// ---- Files ---------------------------------------------------------------------------------
bool is_hdf5(const std::string& path);  // false for a missing or foreign file (stack cleared)
// Opens an existing file read-only; errors for a missing file, a folder or a non-HDF5 file.
Handle open_read(const std::string& path);
// Creates (truncating) a file without object timestamps, so the same content gives the same bytes.
Handle create_truncate(const std::string& path, const std::string& shown_path);
// Creates a file in the latest format (SWMR needs it) with paged file space of `page` bytes.
Handle create_paged_latest(const std::string& path, std::size_t page, const std::string& shown_path);
// One open attempt without throwing: an invalid Handle and `err` (HDF5's message) on failure.
//  read: SWMR read with `metadata_read_attempts` (0: a plain read-only open).
//  rdwr: latest format; `clear_status_flags` clears a dead writer's "open for write" mark.
Handle try_open_read(const std::string& path, unsigned metadata_read_attempts, std::string& err);
Handle try_open_rdwr(const std::string& path, bool clear_status_flags, std::string& err);
void flush(const Handle& file, const std::string& shown_path, const std::string& field);
void close_file(Handle& file, const std::string& shown_path, const std::string& what);
void start_swmr_write(const Handle& file, const std::string& shown_path);
// Raises the end-of-allocation address to the physical end of file (as `h5clear --increment`),
// with `round_to_page` rounded up to the file-space page of a paged file. False on failure.
bool raise_eoa_to_end_of_file(const Handle& file, bool round_to_page);

// ---- Links and attributes ------------------------------------------------------------------
bool exists(const Handle& loc, const std::string& name);  // a link (group or dataset)
bool has_attr(const Handle& loc, const std::string& name);
bool has_dataset(const Handle& loc, const std::string& name);
Handle create_group(const Handle& loc, const std::string& name, const std::string& shown_path);
Handle open_dataset(const Handle& loc, const std::string& name, const std::string& shown_path);

// Scalar attributes: strings as variable-length UTF-8 (as h5py writes str), integers as int64.
// Writing replaces an attribute of the same name.
void write_attr(const Handle& loc, const std::string& name, const std::string& value, const std::string& file);
void write_attr(const Handle& loc, const std::string& name, std::int64_t value, const std::string& file);
void write_string_attr(const Handle& loc, const std::string& name, const std::string& value, const std::string& file);
void write_int_attr(const Handle& loc, const std::string& name, std::int64_t value, const std::string& file);
// Any string, integer or float attribute as text (integers in decimal); field = the name.
std::string read_attr_text(const Handle& loc, const std::string& name, const std::string& file);
// Typed reads; field = "attribute <name>", "missing" / "expected a string" / ... otherwise.
std::string read_string_attr(const Handle& loc, const std::string& name, const std::string& file);
std::int64_t read_int_attr(const Handle& loc, const std::string& name, const std::string& file);

// ---- Whole 1-D datasets (task and probe packs) ---------------------------------------------
// Any integer file type converts to the native one on read.
std::vector<std::int64_t> read_i64(const Handle& loc, const std::string& name, const std::string& file);
std::vector<std::int32_t> read_i32(const Handle& loc, const std::string& name, const std::string& file);
std::vector<std::uint8_t> read_u8(const Handle& loc, const std::string& name, const std::string& file);
std::vector<std::string> read_strings(const Handle& loc, const std::string& name, const std::string& file);
void write_i64(const Handle& loc, const std::string& name, const std::vector<std::int64_t>& v, const std::string& file);
void write_i32(const Handle& loc, const std::string& name, const std::vector<std::int32_t>& v, const std::string& file);
void write_u8(const Handle& loc, const std::string& name, const std::vector<std::uint8_t>& v, const std::string& file);
void write_strings(const Handle& loc, const std::string& name, const std::vector<std::string>& v,
                   const std::string& file);

// ---- Extendible 1-D columns (the archive's tables) -----------------------------------------
enum class Elem { U64, I64, I32, U8, F64, F32, FixedString };
struct ElemType {
  Elem kind;
  std::size_t len = 0;  // FixedString: width in bytes (UTF-8, NUL-padded)
};
// An empty, unlimited, chunked column; `fill` (I64 only) marks rows never written; `compress`:
// shuffle + deflate on every chunk (h5py and HDF5 tools read it transparently).
void create_column(const Handle& group, const std::string& name, ElemType type, std::size_t chunk_rows,
                   const std::int64_t* fill, const std::string& file, const std::string& field,
                   bool compress = false);
// The length of a 1-D dataset (throws naming `field` for another rank).
std::uint64_t length_1d(const Handle& dset, const std::string& file, const std::string& field);
// Rows [start, start+count) into `out` (count * element size bytes). A FixedString column may
// have any fixed width on disk; a variable-length one is refused.
void read_column(const Handle& dset, ElemType type, std::uint64_t start, std::uint64_t count, void* out,
                 const std::string& file, const std::string& field);
// Extends the column to at least start + count (never shrinks), then writes the rows at `start`.
void write_column(const Handle& dset, ElemType type, std::uint64_t start, std::uint64_t count, const void* data,
                  const std::string& file, const std::string& field);

}  // namespace ms::h5
