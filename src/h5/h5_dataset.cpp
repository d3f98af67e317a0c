// Datasets of the HDF5 layer: whole 1-D arrays (the packs) and extendible 1-D columns (the
// archive). Every call's return is checked; errors name the file and the dataset.
#include <algorithm>

#include "h5/h5.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::h5 {
namespace {

Handle dataset_create_list(const std::string& file, const std::string& field) {
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  check(dcpl.get(), file, field, "cannot create a dataset property list");
  // No timestamps: the same content gives the same bytes.
  check(H5Pset_obj_track_times(dcpl.get(), 0), file, field, "cannot turn off object timestamps");
  return dcpl;
}

Handle simple_space(hsize_t n, const hsize_t* maxdims, const std::string& file, const std::string& field) {
  Handle space(H5Screate_simple(1, &n, maxdims), H5Sclose);
  check(space.get(), file, field, "cannot make a dataspace");
  return space;
}

// The dataset's 1-D dataspace and its length; any other rank is refused.
Handle space_1d(const Handle& d, hsize_t* n, const std::string& file, const std::string& field) {
  Handle space(H5Dget_space(d.get()), H5Sclose);
  check(space.get(), file, field, "cannot read the dataset's shape");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  check(rank, file, field, "cannot read the dataset's shape");
  if (rank != 1) throw Error(file, field, "expected a 1-D dataset, found rank " + std::to_string(rank));
  check(H5Sget_simple_extent_dims(space.get(), n, nullptr), file, field, "cannot read the dataset's length");
  return space;
}

// Opens a whole 1-D dataset of the given type class; returns it and its length.
Handle open_1d(const Handle& loc, const std::string& name, H5T_class_t cls, const std::string& file, hsize_t* n) {
  if (!has_dataset(loc, name)) throw Error(file, name, "missing dataset");
  Handle d = open_dataset(loc, name, file);
  space_1d(d, n, file, name);
  Handle type(H5Dget_type(d.get()), H5Tclose);
  check(type.get(), file, name, "cannot read the dataset's type");
  if (H5Tget_class(type.get()) != cls)
    throw Error(file, name, cls == H5T_INTEGER ? "expected an integer dataset" : "expected a string dataset");
  return d;
}

template <typename T>
std::vector<T> read_ints(const Handle& loc, const std::string& name, hid_t mem, const std::string& file) {
  hsize_t n = 0;
  Handle d = open_1d(loc, name, H5T_INTEGER, file, &n);
  std::vector<T> out(n);
  // HDF5 converts any stored integer width to `mem` (out-of-range values saturate, which the
  // callers' range checks then reject).
  if (n > 0) check(H5Dread(d.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), file, name, "cannot read dataset");
  return out;
}

template <typename T>
void write_ints(const Handle& loc, const std::string& name, const std::vector<T>& v, hid_t file_type, hid_t mem,
                const std::string& file) {
  const hsize_t n = v.size();
  Handle space = simple_space(n, nullptr, file, name);
  Handle dcpl = dataset_create_list(file, name);
  // Large arrays compressed in chunks; small ones contiguous (chunking tiny arrays wastes space).
  if (n >= 4096) {
    const hsize_t chunk = std::min<hsize_t>(n, hsize_t{1} << 16);
    check(H5Pset_chunk(dcpl.get(), 1, &chunk), file, name, "cannot set the chunk size");
    check(H5Pset_shuffle(dcpl.get()), file, name, "cannot set the shuffle filter");
    check(H5Pset_deflate(dcpl.get(), 4), file, name, "cannot set the deflate filter");
  }
  Handle d(H5Dcreate2(loc.get(), name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
           H5Dclose);
  check(d.get(), file, name, "cannot create dataset");
  if (n > 0) check(H5Dwrite(d.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), file, name, "cannot write dataset");
}

// A string memory type matching `file_type`: variable length, or fixed width NUL-padded.
Handle memory_string_type(hid_t file_type, std::size_t fixed_width, const std::string& file,
                          const std::string& field) {
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  check(t.get(), file, field, "cannot make a string type");
  check(H5Tset_cset(t.get(), H5Tget_cset(file_type)), file, field, "cannot make a string type");
  if (fixed_width == 0) {
    check(H5Tset_size(t.get(), H5T_VARIABLE), file, field, "cannot make a string type");
  } else {
    check(H5Tset_size(t.get(), fixed_width), file, field, "cannot make a string type");
    check(H5Tset_strpad(t.get(), H5T_STR_NULLPAD), file, field, "cannot make a string type");
  }
  return t;
}

std::string trim_fixed(const char* p, std::size_t n) {
  std::size_t len = 0;
  while (len < n && p[len] != '\0') ++len;
  return std::string(p, len);
}

}  // namespace

std::vector<std::int64_t> read_i64(const Handle& loc, const std::string& name, const std::string& file) {
  return read_ints<std::int64_t>(loc, name, H5T_NATIVE_INT64, file);
}
std::vector<std::int32_t> read_i32(const Handle& loc, const std::string& name, const std::string& file) {
  return read_ints<std::int32_t>(loc, name, H5T_NATIVE_INT32, file);
}
std::vector<std::uint8_t> read_u8(const Handle& loc, const std::string& name, const std::string& file) {
  return read_ints<std::uint8_t>(loc, name, H5T_NATIVE_UINT8, file);
}
void write_i64(const Handle& loc, const std::string& name, const std::vector<std::int64_t>& v,
               const std::string& file) {
  write_ints(loc, name, v, H5T_STD_I64LE, H5T_NATIVE_INT64, file);
}
void write_i32(const Handle& loc, const std::string& name, const std::vector<std::int32_t>& v,
               const std::string& file) {
  write_ints(loc, name, v, H5T_STD_I32LE, H5T_NATIVE_INT32, file);
}
void write_u8(const Handle& loc, const std::string& name, const std::vector<std::uint8_t>& v,
              const std::string& file) {
  write_ints(loc, name, v, H5T_STD_U8LE, H5T_NATIVE_UINT8, file);
}

std::vector<std::string> read_strings(const Handle& loc, const std::string& name, const std::string& file) {
  hsize_t n = 0;
  Handle d = open_1d(loc, name, H5T_STRING, file, &n);
  Handle ftype(H5Dget_type(d.get()), H5Tclose);
  check(ftype.get(), file, name, "cannot read the dataset's type");
  const bool variable = H5Tis_variable_str(ftype.get()) > 0;
  const std::size_t w = variable ? 0 : H5Tget_size(ftype.get());
  Handle mtype = memory_string_type(ftype.get(), w, file, name);
  std::vector<std::string> out;
  out.reserve(n);
  if (n == 0) return out;
  if (variable) {
    std::vector<char*> ptrs(n, nullptr);
    check(H5Dread(d.get(), mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), file, name,
          "cannot read string dataset");
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    Handle space = simple_space(n, nullptr, file, name);
    check(H5Dvlen_reclaim(mtype.get(), space.get(), H5P_DEFAULT, ptrs.data()), file, name, "cannot free strings");
  } else {
    std::vector<char> buf(w * n);
    check(H5Dread(d.get(), mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), file, name,
          "cannot read string dataset");
    for (hsize_t i = 0; i < n; ++i) out.push_back(trim_fixed(buf.data() + i * w, w));
  }
  return out;
}

void write_strings(const Handle& loc, const std::string& name, const std::vector<std::string>& v,
                   const std::string& file) {
  const hsize_t n = v.size();
  Handle space = simple_space(n, nullptr, file, name);
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  check(type.get(), file, name, "cannot make a string type");
  check(H5Tset_size(type.get(), H5T_VARIABLE), file, name, "cannot make a string type");
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), file, name, "cannot make a string type");
  Handle dcpl = dataset_create_list(file, name);
  Handle d(H5Dcreate2(loc.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
           H5Dclose);
  check(d.get(), file, name, "cannot create dataset");
  std::vector<const char*> ptrs;
  ptrs.reserve(v.size());
  for (const auto& s : v) ptrs.push_back(s.c_str());
  if (n > 0)
    check(H5Dwrite(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), file, name,
          "cannot write dataset");
}

// ---- Extendible columns --------------------------------------------------------------------
namespace {

// The on-disk type (fixed little-endian widths; strings UTF-8, NUL-padded) or, with
// `memory`, the matching memory type (an owned copy either way).
Handle column_type(ElemType t, bool memory, const std::string& file, const std::string& field) {
  hid_t base = -1;
  switch (t.kind) {
    case Elem::U64:
      base = memory ? H5T_NATIVE_UINT64 : H5T_STD_U64LE;
      break;
    case Elem::I64:
      base = memory ? H5T_NATIVE_INT64 : H5T_STD_I64LE;
      break;
    case Elem::I32:
      base = memory ? H5T_NATIVE_INT32 : H5T_STD_I32LE;
      break;
    case Elem::U8:
      base = memory ? H5T_NATIVE_UINT8 : H5T_STD_U8LE;
      break;
    case Elem::F64:
      base = memory ? H5T_NATIVE_DOUBLE : H5T_IEEE_F64LE;
      break;
    case Elem::F32:
      base = memory ? H5T_NATIVE_FLOAT : H5T_IEEE_F32LE;
      break;
    case Elem::FixedString:
      base = H5T_C_S1;
      break;
  }
  Handle h(H5Tcopy(base), H5Tclose);
  check(h.get(), file, field, "cannot copy a type");
  if (t.kind == Elem::FixedString) {
    check(H5Tset_size(h.get(), t.len), file, field, "cannot make a string type");
    check(H5Tset_strpad(h.get(), H5T_STR_NULLPAD), file, field, "cannot make a string type");
    check(H5Tset_cset(h.get(), H5T_CSET_UTF8), file, field, "cannot make a string type");
  }
  return h;
}

// The memory type to read a column with: for strings, the file's character set, any fixed width.
Handle read_memory_type(const Handle& d, ElemType t, const std::string& file, const std::string& field) {
  Handle mt = column_type(t, true, file, field);
  if (t.kind != Elem::FixedString) return mt;
  Handle ft(H5Dget_type(d.get()), H5Tclose);
  check(ft.get(), file, field, "cannot read the dataset's type");
  if (H5Tget_class(ft.get()) != H5T_STRING || H5Tis_variable_str(ft.get()) > 0)
    throw Error(file, field, "expected fixed-length strings (the archive format stores no variable-length strings)");
  check(H5Tset_cset(mt.get(), H5Tget_cset(ft.get())), file, field, "cannot make a string type");
  return mt;
}

// Selects rows [start, start+count) of the dataset's space; returns {file space, memory space}.
std::pair<Handle, Handle> select_rows(const Handle& d, hsize_t start, hsize_t count, const std::string& file,
                                      const std::string& field) {
  hsize_t n = 0;
  Handle fspace = space_1d(d, &n, file, field);
  check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr), file, field,
        "cannot select rows " + std::to_string(start) + ".." + std::to_string(start + count));
  return {std::move(fspace), simple_space(count, nullptr, file, field)};
}

}  // namespace

void create_column(const Handle& group, const std::string& name, ElemType type, std::size_t chunk_rows,
                   const std::int64_t* fill, const std::string& file, const std::string& field, bool compress) {
  const hsize_t maxdims = H5S_UNLIMITED, chunk = chunk_rows;
  Handle space = simple_space(0, &maxdims, file, field);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  check(dcpl.get(), file, field, "cannot create a dataset property list");
  check(H5Pset_chunk(dcpl.get(), 1, &chunk), file, field, "cannot set the chunk size");
  if (compress) {
    // Shuffle groups the bytes of each significance together (sign/exponent bytes, the zero high
    // bytes of small integers), which deflate then squeezes; level 4 as the task packs use.
    check(H5Pset_shuffle(dcpl.get()), file, field, "cannot set the shuffle filter");
    check(H5Pset_deflate(dcpl.get(), 4), file, field, "cannot set the deflate filter");
  }
  if (fill != nullptr) check(H5Pset_fill_value(dcpl.get(), H5T_NATIVE_INT64, fill), file, field, "cannot set the fill value");
  Handle ft = column_type(type, false, file, field);
  Handle d(H5Dcreate2(group.get(), name.c_str(), ft.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
           H5Dclose);
  check(d.get(), file, field, "cannot create dataset");
}

std::uint64_t length_1d(const Handle& dset, const std::string& file, const std::string& field) {
  hsize_t n = 0;
  space_1d(dset, &n, file, field);
  return n;
}

void read_column(const Handle& dset, ElemType type, std::uint64_t start, std::uint64_t count, void* out,
                 const std::string& file, const std::string& field) {
  if (count == 0) return;
  auto [fspace, mspace] = select_rows(dset, start, count, file, field);
  Handle mt = read_memory_type(dset, type, file, field);
  check(H5Dread(dset.get(), mt.get(), mspace.get(), fspace.get(), H5P_DEFAULT, out), file, field, "cannot read rows");
}

void write_column(const Handle& dset, ElemType type, std::uint64_t start, std::uint64_t count, const void* data,
                  const std::string& file, const std::string& field) {
  // Only ever grow: rows past the last commit (a killed writer's tail) are overwritten in place.
  // Shrinking with H5Dset_extent and appending again hit an HDF5 1.10.8 bug ("addr overflow"
  // at the next flush) in the archive's kill tests.
  const hsize_t total = std::max<hsize_t>(start + count, length_1d(dset, file, field));
  check(H5Dset_extent(dset.get(), &total), file, field, "cannot extend dataset");
  if (count == 0) return;
  auto [fspace, mspace] = select_rows(dset, start, count, file, field);
  Handle mt = column_type(type, true, file, field);
  check(H5Dwrite(dset.get(), mt.get(), mspace.get(), fspace.get(), H5P_DEFAULT, data), file, field,
        "cannot write rows");
}

}  // namespace ms::h5
