#include "mergesweep/io/safetensors_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "mergesweep/core/error.hpp"
#include "mergesweep/io/fs_util.hpp"

namespace ms::io {

std::uint64_t TensorSpec::nbytes() const noexcept {
  std::uint64_t n = dtype_size(dtype);
  for (auto d : shape) n *= static_cast<std::uint64_t>(d);
  return n;
}

std::uint64_t SafetensorsLayout::file_size() const noexcept {
  return header.size() + (tensors.empty() ? 0 : tensors.back().end);
}

const TensorEntry& SafetensorsLayout::entry(const std::string& name) const {
  for (const auto& e : tensors) {
    if (e.name == name) return e;
  }
  fail("", "'" + name + "'", "tensor is not part of this file's layout");
}

SafetensorsLayout plan_safetensors_layout(std::vector<TensorSpec> specs,
                                          const std::map<std::string, std::string>& metadata,
                                          const std::string& path) {
  std::set<std::string> seen;
  for (const auto& s : specs) {
    if (s.name.empty()) fail(path, "", "a tensor has an empty name");
    if (s.name == "__metadata__") fail(path, "'__metadata__'", "reserved name cannot be a tensor");
    if (!seen.insert(s.name).second) fail(path, "'" + s.name + "'", "duplicate tensor name");
    for (auto d : s.shape) {
      if (d < 0) fail(path, "'" + s.name + "'", "negative dimension in shape");
    }
  }
  // The reference sorts by dtype descending (its enum order), then name ascending.
  std::stable_sort(specs.begin(), specs.end(), [](const TensorSpec& a, const TensorSpec& b) {
    if (a.dtype != b.dtype) return a.dtype > b.dtype;
    return a.name < b.name;
  });
  nlohmann::ordered_json doc = nlohmann::ordered_json::object();
  if (!metadata.empty()) doc["__metadata__"] = metadata;  // std::map: sorted keys, deterministic
  SafetensorsLayout layout;
  std::uint64_t offset = 0;
  for (const auto& s : specs) {
    TensorEntry e;
    e.name = s.name;
    e.dtype = s.dtype;
    e.shape = s.shape;
    e.begin = offset;
    e.end = offset + s.nbytes();
    offset = e.end;
    nlohmann::ordered_json entry;
    entry["dtype"] = dtype_name(s.dtype);
    entry["shape"] = s.shape;
    entry["data_offsets"] = {e.begin, e.end};
    doc[s.name] = std::move(entry);
    layout.tensors.push_back(std::move(e));
  }
  std::string text = doc.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  layout.header.resize(8);
  std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) layout.header[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  layout.header += text;
  return layout;
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                                     const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)), layout_(plan_safetensors_layout(std::move(specs), metadata, path_)) {
  written_.assign(layout_.tensors.size(), false);
  tmp_path_ = temp_sibling(path_);
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path_, "", std::string("cannot create: ") + std::strerror(errno));
  if (::ftruncate(fd_, static_cast<off_t>(layout_.file_size())) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    ::unlink(tmp_path_.c_str());
    fail(path_, "", std::string("cannot size the file: ") + std::strerror(err));
  }
  write_all_at(fd_, layout_.header.data(), layout_.header.size(), 0, path_);
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

void SafetensorsWriter::write(const std::string& name, const void* data, std::uint64_t nbytes) {
  for (std::size_t i = 0; i < layout_.tensors.size(); ++i) {
    const auto& e = layout_.tensors[i];
    if (e.name != name) continue;
    if (nbytes != e.nbytes()) {
      fail(path_, "'" + name + "'", "got " + std::to_string(nbytes) + " bytes, expected " + std::to_string(e.nbytes()));
    }
    write_all_at(fd_, data, nbytes, layout_.header.size() + e.begin, path_);
    written_[i] = true;
    return;
  }
  fail(path_, "'" + name + "'", "tensor is not part of this file's layout");
}

void SafetensorsWriter::commit() {
  for (std::size_t i = 0; i < written_.size(); ++i) {
    if (!written_[i]) fail(path_, "'" + layout_.tensors[i].name + "'", "tensor was never written");
  }
  if (::fsync(fd_) != 0) fail(path_, "", std::string("fsync failed: ") + std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  rename_into_place(tmp_path_, path_);
  committed_ = true;
}

void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const auto& t : tensors) specs.push_back(t.spec);
  SafetensorsWriter w(path, std::move(specs), metadata);
  for (const auto& t : tensors) w.write(t.spec.name, t.data, t.spec.nbytes());
  w.commit();
}

}  // namespace ms::io
