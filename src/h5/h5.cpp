// Handles, errors, files and attributes of the HDF5 layer (datasets: h5_dataset.cpp).
#include "h5/h5.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "mergesweep/core/error.hpp"

namespace ms::h5 {

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    close();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
  }
  return *this;
}

void Handle::close() noexcept {
  if (id_ >= 0 && close_ != nullptr) close_(id_);
  id_ = -1;
}

// ---- Library -------------------------------------------------------------------------------

namespace {
// HDF5 closes every open id at exit. After a write failed (a full disk) the library's file object
// is half torn down, and that close dereferenced a freed pointer: the sweep stopped with a clear
// error, then died of SIGSEGV in exit(). Every file this project opens is closed explicitly
// (h5::Handle, archive::Writer::close), so the exit hook has nothing left to do; it is switched
// off before any other HDF5 call (a static initializer, before main).
const bool kNoExitHook = [] { return H5dont_atexit() >= 0; }();
}  // namespace

// ---- Errors --------------------------------------------------------------------------------

void silence_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

std::string take_error() {
  std::string msg;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
        // Walking upward, the first entry is the innermost (most specific) one.
        if (n == 0 && e->desc) *static_cast<std::string*>(out) = e->desc;
        return 0;
      },
      &msg);
  H5Eclear2(H5E_DEFAULT);
  return msg;
}

void fail(const std::string& file, const std::string& field, const std::string& what) {
  const std::string e = take_error();
  // A full disk is the user's to fix, not HDF5's internals to read (errno 28 inside a long message).
  if (e.find("errno = 28") != std::string::npos || e.find("No space left on device") != std::string::npos)
    throw Error(file, field, what + ": " + kNoSpace);
  throw Error(file, field, e.empty() ? what : what + " (HDF5: " + e + ")");
}

void check(std::int64_t rc, const std::string& file, const std::string& field, const std::string& what) {
  if (rc < 0) fail(file, field, what);
}

namespace {

Handle property_list(hid_t cls, const std::string& file) {
  Handle p(H5Pcreate(cls), H5Pclose);
  check(p.get(), file, "", "cannot create an HDF5 property list");
  return p;
}

Handle latest_format_access(const std::string& file) {
  Handle fapl = property_list(H5P_FILE_ACCESS, file);
  // SWMR needs the latest file format (version-3 superblock, SWMR-safe chunk indexes).
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST), file, "",
        "cannot select the latest file format");
  return fapl;
}

}  // namespace

// ---- Files ---------------------------------------------------------------------------------

bool is_hdf5(const std::string& path) {
  silence_errors();
  const htri_t r = H5Fis_hdf5(path.c_str());
  H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

Handle open_read(const std::string& path) {
  silence_errors();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(path, "", "no such file");
  if (std::filesystem::is_directory(path, ec)) throw Error(path, "", "is a directory, expected an HDF5 file");
  if (!is_hdf5(path)) throw Error(path, "", "not an HDF5 file");
  Handle f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  check(f.get(), path, "", "cannot open the HDF5 file (truncated or damaged?)");
  return f;
}

Handle create_truncate(const std::string& path, const std::string& shown_path) {
  silence_errors();
  // No object timestamps anywhere (the root group inherits from the file creation list), so the
  // same pack gives the same bytes (the testbed is byte-deterministic).
  Handle fcpl = property_list(H5P_FILE_CREATE, shown_path);
  check(H5Pset_obj_track_times(fcpl.get(), 0), shown_path, "", "cannot turn off object timestamps");
  Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), H5P_DEFAULT), H5Fclose);
  check(f.get(), shown_path, "", "cannot create the HDF5 file (missing folder or no permission?)");
  return f;
}

Handle create_paged_latest(const std::string& path, std::size_t page, const std::string& shown_path) {
  silence_errors();
  Handle fapl = latest_format_access(shown_path);
  Handle fcpl = property_list(H5P_FILE_CREATE, shown_path);
  check(H5Pset_file_space_strategy(fcpl.get(), H5F_FSPACE_STRATEGY_PAGE, 0, 1), shown_path, "",
        "cannot select paged file space");
  check(H5Pset_file_space_page_size(fcpl.get(), page), shown_path, "", "cannot set the file-space page size");
  Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), H5Fclose);
  check(f.get(), shown_path, "", "cannot create the file");
  return f;
}

Handle try_open_read(const std::string& path, unsigned metadata_read_attempts, std::string& err) {
  silence_errors();
  Handle f;
  if (metadata_read_attempts == 0) {
    f = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  } else {
    Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    if (!fapl.valid() || H5Pset_metadata_read_attempts(fapl.get(), metadata_read_attempts) < 0) {
      err = take_error();
      return f;
    }
    f = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get()), H5Fclose);
  }
  if (!f.valid()) err = take_error();
  return f;
}

Handle try_open_rdwr(const std::string& path, bool clear_status_flags, std::string& err) {
  silence_errors();
  Handle f;
  try {
    Handle fapl = latest_format_access(path);
    if (clear_status_flags) {
      hbool_t clear = 1;
      if (H5Pexist(fapl.get(), "clear_status_flags") <= 0 || H5Pset(fapl.get(), "clear_status_flags", &clear) < 0) {
        err = "this HDF5 library cannot clear a file's status flags";
        H5Eclear2(H5E_DEFAULT);
        return f;
      }
    }
    f = Handle(H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl.get()), H5Fclose);
  } catch (const Error& e) {
    err = e.what();
    return f;
  }
  if (!f.valid()) err = take_error();
  return f;
}

void flush(const Handle& file, const std::string& shown_path, const std::string& field) {
  check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), shown_path, field, "cannot flush the HDF5 file");
}

void close_file(Handle& file, const std::string& shown_path, const std::string& what) {
  const hid_t id = file.release();  // a failed close is not retried by the destructor
  check(H5Fclose(id), shown_path, "", what);
}

void start_swmr_write(const Handle& file, const std::string& shown_path) {
  check(H5Fstart_swmr_write(file.get()), shown_path, "", "cannot start SWMR writing");
}

bool raise_eoa_to_end_of_file(const Handle& file, bool round_to_page) {
  hsize_t size = 0, page = 0;
  haddr_t eoa = 0;
  Handle fcpl(H5Fget_create_plist(file.get()), H5Pclose);
  if (!fcpl.valid() || H5Fget_filesize(file.get(), &size) < 0 || H5Fget_eoa(file.get(), &eoa) < 0 ||
      H5Pget_file_space_page_size(fcpl.get(), &page) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  // Paged files keep the EOA on a page boundary; a dead writer's last write may end mid-page.
  hsize_t end = std::max<hsize_t>(size, eoa);
  if (round_to_page && page > 0 && end % page) end += page - end % page;
  if (H5Fincrement_filesize(file.get(), end - std::max<hsize_t>(size, eoa)) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  return true;
}

// ---- Links and attributes ------------------------------------------------------------------

bool exists(const Handle& loc, const std::string& name) {
  const htri_t r = H5Lexists(loc.get(), name.c_str(), H5P_DEFAULT);
  H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

bool has_attr(const Handle& loc, const std::string& name) {
  const htri_t r = H5Aexists(loc.get(), name.c_str());
  H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

bool has_dataset(const Handle& loc, const std::string& name) {
  if (!exists(loc, name)) return false;
  H5O_info_t info;
  if (H5Oget_info_by_name(loc.get(), name.c_str(), &info, H5P_DEFAULT) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  return info.type == H5O_TYPE_DATASET;
}

Handle create_group(const Handle& loc, const std::string& name, const std::string& shown_path) {
  Handle g(H5Gcreate2(loc.get(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  check(g.get(), shown_path, name, "cannot create group");
  return g;
}

Handle open_dataset(const Handle& loc, const std::string& name, const std::string& shown_path) {
  Handle d(H5Dopen2(loc.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
  check(d.get(), shown_path, name, "cannot open dataset");
  return d;
}

namespace {

Handle utf8_vlen_type(const std::string& file, const std::string& field) {
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  check(t.get(), file, field, "cannot make a string type");
  check(H5Tset_size(t.get(), H5T_VARIABLE), file, field, "cannot make a string type");
  check(H5Tset_cset(t.get(), H5T_CSET_UTF8), file, field, "cannot make a string type");
  return t;
}

Handle scalar_attr(const Handle& loc, const std::string& name, hid_t type, const std::string& file,
                   const std::string& field) {
  if (has_attr(loc, name)) check(H5Adelete(loc.get(), name.c_str()), file, field, "cannot replace attribute");
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  check(space.get(), file, field, "cannot make a scalar dataspace");
  Handle a(H5Acreate2(loc.get(), name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  check(a.get(), file, field, "cannot write attribute");
  return a;
}

void write_text_attr(const Handle& loc, const std::string& name, const std::string& value, const std::string& file,
                     const std::string& field) {
  // Attributes are only written before SWMR starts, so variable-length data is safe here.
  Handle type = utf8_vlen_type(file, field);
  Handle a = scalar_attr(loc, name, type.get(), file, field);
  const char* p = value.c_str();
  check(H5Awrite(a.get(), type.get(), &p), file, field, "cannot write attribute");
}

void write_integer_attr(const Handle& loc, const std::string& name, std::int64_t value, const std::string& file,
                        const std::string& field) {
  Handle a = scalar_attr(loc, name, H5T_STD_I64LE, file, field);
  check(H5Awrite(a.get(), H5T_NATIVE_INT64, &value), file, field, "cannot write attribute");
}

// An opened scalar attribute and its file type; `field` names it in errors.
struct ScalarAttr {
  Handle attr, type;
};

ScalarAttr open_scalar_attr(const Handle& loc, const std::string& name, const std::string& file,
                            const std::string& field, const char* missing, const char* not_scalar) {
  if (!has_attr(loc, name)) throw Error(file, field, missing);
  ScalarAttr s{Handle(H5Aopen(loc.get(), name.c_str(), H5P_DEFAULT), H5Aclose), Handle()};
  check(s.attr.get(), file, field, "cannot open attribute");
  s.type = Handle(H5Aget_type(s.attr.get()), H5Tclose);
  check(s.type.get(), file, field, "cannot read the attribute's type");
  Handle space(H5Aget_space(s.attr.get()), H5Sclose);
  check(space.get(), file, field, "cannot read the attribute's shape");
  if (H5Sget_simple_extent_npoints(space.get()) != 1) throw Error(file, field, not_scalar);
  return s;
}

// Reads a string attribute of any kind (variable or fixed length, any character set).
std::string read_text(const ScalarAttr& s, const std::string& file, const std::string& field) {
  const H5T_cset_t cset = H5Tget_cset(s.type.get());
  Handle mt(H5Tcopy(H5T_C_S1), H5Tclose);
  check(mt.get(), file, field, "cannot make a string type");
  check(H5Tset_cset(mt.get(), cset), file, field, "cannot make a string type");
  if (H5Tis_variable_str(s.type.get()) > 0) {  // as h5py writes str attributes
    check(H5Tset_size(mt.get(), H5T_VARIABLE), file, field, "cannot make a string type");
    char* p = nullptr;
    check(H5Aread(s.attr.get(), mt.get(), &p), file, field, "cannot read attribute");
    std::string out = p ? p : "";
    H5free_memory(p);
    return out;
  }
  const std::size_t n = H5Tget_size(s.type.get());
  if (n == 0) fail(file, field, "cannot read the string attribute's width");
  check(H5Tset_size(mt.get(), n), file, field, "cannot make a string type");
  check(H5Tset_strpad(mt.get(), H5T_STR_NULLPAD), file, field, "cannot make a string type");
  std::vector<char> buf(n + 1, '\0');
  check(H5Aread(s.attr.get(), mt.get(), buf.data()), file, field, "cannot read attribute");
  return std::string(buf.data());  // stops at the first NUL (padding)
}

std::string attribute_field(const std::string& name) { return "attribute " + name; }

}  // namespace

void write_attr(const Handle& loc, const std::string& name, const std::string& value, const std::string& file) {
  write_text_attr(loc, name, value, file, name);
}
void write_attr(const Handle& loc, const std::string& name, std::int64_t value, const std::string& file) {
  write_integer_attr(loc, name, value, file, name);
}
void write_string_attr(const Handle& loc, const std::string& name, const std::string& value, const std::string& file) {
  write_text_attr(loc, name, value, file, attribute_field(name));
}
void write_int_attr(const Handle& loc, const std::string& name, std::int64_t value, const std::string& file) {
  write_integer_attr(loc, name, value, file, attribute_field(name));
}

std::string read_attr_text(const Handle& loc, const std::string& name, const std::string& file) {
  const ScalarAttr s = open_scalar_attr(loc, name, file, name, "missing attribute", "attribute is not a scalar");
  switch (H5Tget_class(s.type.get())) {
    case H5T_INTEGER: {
      long long v = 0;
      check(H5Aread(s.attr.get(), H5T_NATIVE_LLONG, &v), file, name, "cannot read attribute");
      return std::to_string(v);
    }
    case H5T_FLOAT: {
      double v = 0;
      check(H5Aread(s.attr.get(), H5T_NATIVE_DOUBLE, &v), file, name, "cannot read attribute");
      char b[64];
      std::snprintf(b, sizeof b, "%.17g", v);
      return b;
    }
    case H5T_STRING:
      return read_text(s, file, name);
    default:
      throw Error(file, name, "attribute is neither a string nor a number");
  }
}

std::string read_string_attr(const Handle& loc, const std::string& name, const std::string& file) {
  const std::string field = attribute_field(name);
  const ScalarAttr s = open_scalar_attr(loc, name, file, field, "missing", "expected a single string");
  if (H5Tget_class(s.type.get()) != H5T_STRING) throw Error(file, field, "expected a string");
  return read_text(s, file, field);
}

std::int64_t read_int_attr(const Handle& loc, const std::string& name, const std::string& file) {
  const std::string field = attribute_field(name);
  const ScalarAttr s = open_scalar_attr(loc, name, file, field, "missing", "expected a single integer");
  if (H5Tget_class(s.type.get()) != H5T_INTEGER) throw Error(file, field, "expected an integer");
  std::int64_t v = 0;
  check(H5Aread(s.attr.get(), H5T_NATIVE_INT64, &v), file, field, "cannot read");
  return v;
}

}  // namespace ms::h5
