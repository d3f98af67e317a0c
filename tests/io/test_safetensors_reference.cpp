// Compatibility with the reference `safetensors` package, on files it wrote itself
// (tests/fixtures/make_safetensors_fixtures.py): we read them bit-exactly, and our writer
// reproduces every one of them byte for byte.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "common/test_util.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/sha256.hpp"
#include "mergesweep/io/safetensors_file.hpp"
#include "mergesweep/io/safetensors_writer.hpp"

namespace ms::io {
namespace {

std::string hex(const std::uint8_t* p, std::size_t n) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += k[p[i] >> 4], s += k[p[i] & 15];
  return s;
}

std::vector<std::uint8_t> unhex(const std::string& s) {
  std::vector<std::uint8_t> out(s.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::uint8_t>(std::stoi(s.substr(2 * i, 2), nullptr, 16));
  return out;
}

nlohmann::json manifest() {
  return nlohmann::json::parse(test::read_file(test::source_path("tests/fixtures/safetensors/manifest.json")));
}

std::string fixture(const std::string& name) { return test::source_path("tests/fixtures/safetensors/" + name); }

TEST(SafetensorsReference, ManifestCoversEveryDtype) {
  std::set<std::string> seen;
  const auto m = manifest();
  for (const auto& f : m["files"])
    for (const auto& t : f["tensors"]) seen.insert(t["dtype"].get<std::string>());
  EXPECT_EQ(seen.size(), 12u);
}

TEST(SafetensorsReference, ReadsReferenceFilesBitExactly) {
  const auto m = manifest();
  for (const auto& f : m["files"]) {
    const std::string path = fixture(f["file"]);
    SCOPED_TRACE(path);
    const auto file = SafetensorsFile::open(path);
    EXPECT_EQ(sha256_file(path), f["sha256"].get<std::string>());
    EXPECT_EQ(file->header().header_len, f["header_len"].get<std::uint64_t>());
    using Meta = std::map<std::string, std::string>;
    EXPECT_EQ(file->header().metadata, f["metadata"].get<Meta>());
    ASSERT_EQ(file->header().tensors.size(), f["tensors"].size());
    for (const auto& t : f["tensors"]) {
      const auto& e = file->require(t["name"].get<std::string>());
      EXPECT_STREQ(dtype_name(e.dtype), t["dtype"].get<std::string>().c_str());
      EXPECT_EQ(e.shape, t["shape"].get<std::vector<std::int64_t>>());
      EXPECT_EQ(hex(file->data(e), e.nbytes()), t["hex"].get<std::string>()) << e.name;
      if (!t.contains("values")) continue;
      // Float tensors: the zero-copy ATen view holds exactly the reference's numbers.
      const at::Tensor view = file->tensor(e).to(at::kDouble).flatten();
      const auto values = t["values"].get<std::vector<double>>();
      ASSERT_EQ(view.numel(), static_cast<std::int64_t>(values.size()));
      for (std::size_t i = 0; i < values.size(); ++i) EXPECT_EQ(view[i].item<double>(), values[i]) << e.name << "[" << i << "]";
    }
  }
}

TEST(SafetensorsReference, WriterReproducesReferenceFilesByteForByte) {
  test::TempDir tmp;
  const auto m = manifest();
  for (const auto& f : m["files"]) {
    SCOPED_TRACE(f["file"].get<std::string>());
    std::vector<std::vector<std::uint8_t>> buffers;
    std::vector<TensorBytes> tensors;
    for (const auto& t : f["tensors"]) {
      buffers.push_back(unhex(t["hex"].get<std::string>()));
      TensorBytes tb;
      tb.spec = {t["name"], *dtype_from_name(t["dtype"].get<std::string>()), t["shape"].get<std::vector<std::int64_t>>()};
      tb.data = buffers.back().data();
      tensors.push_back(tb);
    }
    const std::string out = tmp / f["file"].get<std::string>();
    write_safetensors(out, tensors, f["metadata"].get<std::map<std::string, std::string>>());
    EXPECT_EQ(test::read_file(out), test::read_file(fixture(f["file"])));
  }
}

TEST(SafetensorsReference, ViewsShareTheMappingAndOutliveTheFile) {
  at::Tensor view;
  const std::uint8_t* raw = nullptr;
  {
    const auto file = SafetensorsFile::open(fixture("all_dtypes.safetensors"));
    view = file->tensor("t_f32");
    raw = file->data(file->require("t_f32"));
  }
  EXPECT_EQ(static_cast<const void*>(view.data_ptr()), static_cast<const void*>(raw));  // zero-copy
  // Still mapped after the file object is gone: t_f32 is tensor 9 of the generator, whose first
  // value is -3 * (1 + 9) + 0.125 * 9.
  EXPECT_FLOAT_EQ(view[0][0].item<float>(), -28.875f);
}

// F8 views are refused (libtorch 1.13 has no F8 type); the bytes stay readable through data().
TEST(SafetensorsReference, F8HasNoATenTypeAndSaysSo) {
  const auto file = SafetensorsFile::open(fixture("all_dtypes.safetensors"));
  try {
    file->tensor("t_f8_e4m3");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("F8_E4M3"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("t_f8_e4m3"), std::string::npos);
  }
}

}  // namespace
}  // namespace ms::io
