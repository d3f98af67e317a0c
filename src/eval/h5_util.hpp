// Small HDF5 C-API helpers shared by the task and probe pack readers/writers: RAII handles,
// 1-D datasets of fixed-width integers, string attributes (fixed or variable length, as h5py
// writes them) and string lists. Every failure is an ms::Error naming the file and the field.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ms::eval::h5 {

// Owns one hid_t and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle();
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void close();  // closes now (errors ignored), so the file can be renamed

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

// Turns off HDF5's automatic error-stack printing: our own messages say what went wrong.
void quiet_errors();

// Opens an existing pack read-only; errors for a missing file or one that is not HDF5.
Handle open_read(const std::string& path);
Handle create_truncate(const std::string& path, const std::string& shown_path);

bool has_dataset(hid_t file, const char* name);
bool has_attribute(hid_t file, const char* name);

// 1-D datasets (any integer file type; converted to the native type on read).
std::vector<std::int64_t> read_i64(hid_t file, const char* name, const std::string& path);
std::vector<std::int32_t> read_i32(hid_t file, const char* name, const std::string& path);
std::vector<std::uint8_t> read_u8(hid_t file, const char* name, const std::string& path);
std::vector<std::string> read_strings(hid_t file, const char* name, const std::string& path);
void write_i64(hid_t file, const char* name, const std::vector<std::int64_t>& v, const std::string& path);
void write_i32(hid_t file, const char* name, const std::vector<std::int32_t>& v, const std::string& path);
void write_u8(hid_t file, const char* name, const std::vector<std::uint8_t>& v, const std::string& path);
void write_strings(hid_t file, const char* name, const std::vector<std::string>& v, const std::string& path);

// Scalar attributes on the root group.
std::string read_string_attr(hid_t file, const char* name, const std::string& path);
std::int64_t read_int_attr(hid_t file, const char* name, const std::string& path);
void write_string_attr(hid_t file, const char* name, const std::string& value, const std::string& path);
void write_int_attr(hid_t file, const char* name, std::int64_t value, const std::string& path);

}  // namespace ms::eval::h5
