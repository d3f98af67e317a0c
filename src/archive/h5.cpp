#include "h5.hpp"

#include <cstdio>
#include <vector>

#include "mergesweep/core/error.hpp"

namespace ms::archive::h5 {

void quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

std::string last_error() {
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
  const std::string e = last_error();
  throw Error(file, field, e.empty() ? what : what + " (HDF5: " + e + ")");
}

bool exists(hid_t loc, const std::string& name) {
  const htri_t r = H5Lexists(loc, name.c_str(), H5P_DEFAULT);
  H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

bool has_attr(hid_t loc, const std::string& name) {
  const htri_t r = H5Aexists(loc, name.c_str());
  H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

namespace {
void replace_attr(hid_t loc, const std::string& name) {
  if (has_attr(loc, name)) H5Adelete(loc, name.c_str());
}
}  // namespace

// Variable-length UTF-8, as h5py writes str attributes (h5py reads them back as str). Attributes
// are only written before SWMR starts, so variable-length data is safe here.
void write_attr(hid_t loc, const std::string& name, const std::string& value, const std::string& file) {
  replace_attr(loc, name);
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(loc, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  const char* p = value.c_str();
  if (!a.valid() || H5Awrite(a.get(), type.get(), &p) < 0) fail(file, name, "cannot write attribute");
}

void write_attr(hid_t loc, const std::string& name, long long value, const std::string& file) {
  replace_attr(loc, name);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(loc, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  const long long v = value;
  if (!a.valid() || H5Awrite(a.get(), H5T_NATIVE_LLONG, &v) < 0) fail(file, name, "cannot write attribute");
}

std::string read_attr_text(hid_t loc, const std::string& name, const std::string& file) {
  Handle a(H5Aopen(loc, name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!a.valid()) fail(file, name, "missing attribute");
  Handle type(H5Aget_type(a.get()), H5Tclose);
  Handle space(H5Aget_space(a.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1) fail(file, name, "attribute is not a scalar");
  switch (H5Tget_class(type.get())) {
    case H5T_INTEGER: {
      long long v = 0;
      if (H5Aread(a.get(), H5T_NATIVE_LLONG, &v) < 0) fail(file, name, "cannot read attribute");
      return std::to_string(v);
    }
    case H5T_FLOAT: {
      double v = 0;
      if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v) < 0) fail(file, name, "cannot read attribute");
      char b[64];
      std::snprintf(b, sizeof b, "%.17g", v);
      return b;
    }
    case H5T_STRING: {
      if (H5Tis_variable_str(type.get()) > 0) {  // as h5py writes str attributes
        Handle mt(H5Tcopy(H5T_C_S1), H5Tclose);
        H5Tset_size(mt.get(), H5T_VARIABLE);
        H5Tset_cset(mt.get(), H5Tget_cset(type.get()));
        char* p = nullptr;
        if (H5Aread(a.get(), mt.get(), &p) < 0) fail(file, name, "cannot read attribute");
        std::string s = p ? p : "";
        H5free_memory(p);
        return s;
      }
      const std::size_t n = H5Tget_size(type.get());
      std::vector<char> buf(n + 1, '\0');
      if (H5Aread(a.get(), type.get(), buf.data()) < 0) fail(file, name, "cannot read attribute");
      return std::string(buf.data());  // stops at the first NUL (padding)
    }
    default:
      fail(file, name, "attribute is neither a string nor a number");
  }
}

}  // namespace ms::archive::h5
