// Small HDF5 C-API helpers for the archive: an owning handle, quiet error stack with the
// innermost message recoverable, and typed attribute access. Kept private to src/archive.
#pragma once

#include <hdf5.h>

#include <string>

namespace ms::archive::h5 {

// Owns one hid_t and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  hid_t release() {  // gives up ownership without closing
    const hid_t id = id_;
    id_ = -1;
    return id;
  }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

// Turns off HDF5's automatic error printing: our messages say what went wrong. Idempotent.
void quiet();
// The most specific message on HDF5's current error stack ("" if none), e.g. "truncated file: ...".
std::string last_error();
// Throws ms::Error(file, field, what + ": " + last_error()).
[[noreturn]] void fail(const std::string& file, const std::string& field, const std::string& what);

bool exists(hid_t loc, const std::string& name);  // link exists (group or dataset)
bool has_attr(hid_t loc, const std::string& name);

// Root attributes: strings as variable-length UTF-8 scalars, integers as int64.
void write_attr(hid_t loc, const std::string& name, const std::string& value, const std::string& file);
void write_attr(hid_t loc, const std::string& name, long long value, const std::string& file);
// Any string or integer or float attribute as text (integers in decimal).
std::string read_attr_text(hid_t loc, const std::string& name, const std::string& file);

}  // namespace ms::archive::h5
