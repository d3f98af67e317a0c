#include "h5_util.hpp"

#include <cstring>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/fs_util.hpp"

namespace ms::eval::h5 {

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    close();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
  }
  return *this;
}

Handle::~Handle() { close(); }

void Handle::close() {
  if (id_ >= 0 && close_ != nullptr) close_(id_);
  id_ = -1;
}

void quiet_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

Handle open_read(const std::string& path) {
  quiet_errors();
  if (!io::path_exists(path)) fail(path, "", "no such file");
  if (io::is_directory(path)) fail(path, "", "is a directory, expected an HDF5 file");
  if (H5Fis_hdf5(path.c_str()) <= 0) fail(path, "", "not an HDF5 file");
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) fail(path, "", "cannot open the HDF5 file (truncated or damaged?)");
  return Handle(f, H5Fclose);
}

Handle create_truncate(const std::string& path, const std::string& shown_path) {
  quiet_errors();
  // No object timestamps anywhere (the root group inherits from the file creation list), so the
  // same pack gives the same bytes (the testbed is byte-deterministic).
  const hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  H5Pset_obj_track_times(fcpl, 0);
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  H5Pclose(fcpl);
  if (f < 0) fail(shown_path, "", "cannot create the HDF5 file (missing folder or no permission?)");
  return Handle(f, H5Fclose);
}

bool has_dataset(hid_t file, const char* name) {
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return false;
  H5O_info_t info;
  if (H5Oget_info_by_name(file, name, &info, H5P_DEFAULT) < 0) return false;
  return info.type == H5O_TYPE_DATASET;
}

bool has_attribute(hid_t file, const char* name) { return H5Aexists(file, name) > 0; }

namespace {

// Opens a 1-D dataset of the given type class and returns its length.
Handle open_1d(hid_t file, const char* name, H5T_class_t cls, const std::string& path, hsize_t* n) {
  if (!has_dataset(file, name)) fail(path, name, "missing dataset");
  Handle d(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  if (!d.valid()) fail(path, name, "cannot open dataset");
  Handle space(H5Dget_space(d.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank != 1) fail(path, name, "expected a 1-D dataset, found rank " + std::to_string(rank));
  H5Sget_simple_extent_dims(space.get(), n, nullptr);
  Handle type(H5Dget_type(d.get()), H5Tclose);
  if (H5Tget_class(type.get()) != cls)
    fail(path, name, cls == H5T_INTEGER ? "expected an integer dataset" : "expected a string dataset");
  return d;
}

template <typename T>
std::vector<T> read_ints(hid_t file, const char* name, hid_t mem, const std::string& path) {
  hsize_t n = 0;
  Handle d = open_1d(file, name, H5T_INTEGER, path, &n);
  std::vector<T> out(n);
  // HDF5 converts any stored integer width to `mem` (out-of-range values saturate, which the
  // callers' range checks then reject).
  if (n > 0 && H5Dread(d.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    fail(path, name, "cannot read dataset");
  return out;
}

template <typename T>
void write_ints(hid_t file, const char* name, const std::vector<T>& v, hid_t file_type, hid_t mem,
                const std::string& path) {
  const hsize_t n = v.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  // Large arrays compressed in chunks; small ones contiguous (chunking tiny arrays wastes space).
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_obj_track_times(dcpl.get(), 0);
  if (n >= 4096) {
    const hsize_t chunk = n < (hsize_t{1} << 16) ? n : (hsize_t{1} << 16);
    H5Pset_chunk(dcpl.get(), 1, &chunk);
    H5Pset_shuffle(dcpl.get());
    H5Pset_deflate(dcpl.get(), 4);
  }
  Handle d(H5Dcreate2(file, name, file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
  if (!d.valid()) fail(path, name, "cannot create dataset");
  if (n > 0 && H5Dwrite(d.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
    fail(path, name, "cannot write dataset");
}

// A variable-length or fixed-length string type matching `file_type`'s character set.
Handle memory_string_type(hid_t file_type) {
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_cset(t.get(), H5Tget_cset(file_type));
  if (H5Tis_variable_str(file_type) > 0) {
    H5Tset_size(t.get(), H5T_VARIABLE);
  } else {
    H5Tset_size(t.get(), H5Tget_size(file_type));
    H5Tset_strpad(t.get(), H5T_STR_NULLPAD);
  }
  return t;
}

std::string trim_fixed(const char* p, std::size_t n) {
  std::size_t len = 0;
  while (len < n && p[len] != '\0') ++len;
  return std::string(p, len);
}

Handle utf8_vlen_type() {
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  return t;
}

}  // namespace

std::vector<std::int64_t> read_i64(hid_t file, const char* name, const std::string& path) {
  return read_ints<std::int64_t>(file, name, H5T_NATIVE_INT64, path);
}
std::vector<std::int32_t> read_i32(hid_t file, const char* name, const std::string& path) {
  return read_ints<std::int32_t>(file, name, H5T_NATIVE_INT32, path);
}
std::vector<std::uint8_t> read_u8(hid_t file, const char* name, const std::string& path) {
  return read_ints<std::uint8_t>(file, name, H5T_NATIVE_UINT8, path);
}
void write_i64(hid_t file, const char* name, const std::vector<std::int64_t>& v, const std::string& path) {
  write_ints(file, name, v, H5T_STD_I64LE, H5T_NATIVE_INT64, path);
}
void write_i32(hid_t file, const char* name, const std::vector<std::int32_t>& v, const std::string& path) {
  write_ints(file, name, v, H5T_STD_I32LE, H5T_NATIVE_INT32, path);
}
void write_u8(hid_t file, const char* name, const std::vector<std::uint8_t>& v, const std::string& path) {
  write_ints(file, name, v, H5T_STD_U8LE, H5T_NATIVE_UINT8, path);
}

std::vector<std::string> read_strings(hid_t file, const char* name, const std::string& path) {
  hsize_t n = 0;
  Handle d = open_1d(file, name, H5T_STRING, path, &n);
  Handle ftype(H5Dget_type(d.get()), H5Tclose);
  Handle mtype = memory_string_type(ftype.get());
  std::vector<std::string> out;
  out.reserve(n);
  if (n == 0) return out;
  if (H5Tis_variable_str(ftype.get()) > 0) {
    std::vector<char*> ptrs(n, nullptr);
    if (H5Dread(d.get(), mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
      fail(path, name, "cannot read string dataset");
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    Handle space(H5Dget_space(d.get()), H5Sclose);
    H5Dvlen_reclaim(mtype.get(), space.get(), H5P_DEFAULT, ptrs.data());
  } else {
    const std::size_t w = H5Tget_size(ftype.get());
    std::vector<char> buf(w * n);
    if (H5Dread(d.get(), mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
      fail(path, name, "cannot read string dataset");
    for (hsize_t i = 0; i < n; ++i) out.push_back(trim_fixed(buf.data() + i * w, w));
  }
  return out;
}

void write_strings(hid_t file, const char* name, const std::vector<std::string>& v, const std::string& path) {
  const hsize_t n = v.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle type = utf8_vlen_type();
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_obj_track_times(dcpl.get(), 0);
  Handle d(H5Dcreate2(file, name, type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
  if (!d.valid()) fail(path, name, "cannot create dataset");
  std::vector<const char*> ptrs;
  for (const auto& s : v) ptrs.push_back(s.c_str());
  if (n > 0 && H5Dwrite(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
    fail(path, name, "cannot write dataset");
}

std::string read_string_attr(hid_t file, const char* name, const std::string& path) {
  if (!has_attribute(file, name)) fail(path, std::string("attribute ") + name, "missing");
  Handle a(H5Aopen(file, name, H5P_DEFAULT), H5Aclose);
  Handle ftype(H5Aget_type(a.get()), H5Tclose);
  if (H5Tget_class(ftype.get()) != H5T_STRING) fail(path, std::string("attribute ") + name, "expected a string");
  Handle space(H5Aget_space(a.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    fail(path, std::string("attribute ") + name, "expected a single string");
  Handle mtype = memory_string_type(ftype.get());
  if (H5Tis_variable_str(ftype.get()) > 0) {
    char* p = nullptr;
    if (H5Aread(a.get(), mtype.get(), &p) < 0) fail(path, std::string("attribute ") + name, "cannot read");
    std::string s = p ? p : "";
    H5Dvlen_reclaim(mtype.get(), space.get(), H5P_DEFAULT, &p);
    return s;
  }
  const std::size_t w = H5Tget_size(ftype.get());
  std::vector<char> buf(w + 1, '\0');
  if (H5Aread(a.get(), mtype.get(), buf.data()) < 0) fail(path, std::string("attribute ") + name, "cannot read");
  return trim_fixed(buf.data(), w);
}

std::int64_t read_int_attr(hid_t file, const char* name, const std::string& path) {
  if (!has_attribute(file, name)) fail(path, std::string("attribute ") + name, "missing");
  Handle a(H5Aopen(file, name, H5P_DEFAULT), H5Aclose);
  Handle ftype(H5Aget_type(a.get()), H5Tclose);
  if (H5Tget_class(ftype.get()) != H5T_INTEGER) fail(path, std::string("attribute ") + name, "expected an integer");
  Handle space(H5Aget_space(a.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    fail(path, std::string("attribute ") + name, "expected a single integer");
  std::int64_t v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_INT64, &v) < 0) fail(path, std::string("attribute ") + name, "cannot read");
  return v;
}

void write_string_attr(hid_t file, const char* name, const std::string& value, const std::string& path) {
  Handle type = utf8_vlen_type();
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(file, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  const char* p = value.c_str();
  if (!a.valid() || H5Awrite(a.get(), type.get(), &p) < 0) fail(path, std::string("attribute ") + name, "cannot write");
}

void write_int_attr(hid_t file, const char* name, std::int64_t value, const std::string& path) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(file, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid() || H5Awrite(a.get(), H5T_NATIVE_INT64, &value) < 0)
    fail(path, std::string("attribute ") + name, "cannot write");
}

}  // namespace ms::eval::h5
