// Probe pack files (HDF5): tokenized sentences as one flat array with offsets, a label and a
// split per sentence, the class names. Layout (format_version 1) in docs/formats.md, "Probe packs".
#include <cstdio>
#include <limits>

#include "mergesweep/core/error.hpp"
#include "mergesweep/eval/probes.hpp"
#include "mergesweep/io/fs_util.hpp"
#include "pack_checks.hpp"
#include "pack_file.hpp"

namespace ms::eval {
namespace {

constexpr const char* kFormat = "mergesweep-probe-pack";
constexpr std::int64_t kFormatVersion = 1;

const char* split_name(Split s) { return s == Split::kTrain ? "train" : s == Split::kDev ? "dev" : "test"; }

void validate(const ProbePack& pack, const std::string& path) {
  if (pack.vocab_size <= 0 || pack.vocab_size > std::numeric_limits<std::int32_t>::max())
    fail(path, "attribute vocab_size", "must be in [1, 2^31-1], found " + std::to_string(pack.vocab_size));
  const std::size_t n = pack.sentences.size();
  if (n == 0) fail(path, "offsets", "the pack has no sentences");
  if (pack.labels.size() != n)
    fail(path, "labels", "has " + std::to_string(pack.labels.size()) + " entries, expected one per sentence (" +
                             std::to_string(n) + ")");
  if (pack.split.size() != n)
    fail(path, "split", "has " + std::to_string(pack.split.size()) + " entries, expected one per sentence (" +
                            std::to_string(n) + ")");
  const std::size_t k = pack.label_names.size();
  if (k < 2) fail(path, "label_names", "a probe needs at least 2 classes, found " + std::to_string(k));
  std::size_t count[3] = {0, 0, 0};
  for (std::size_t i = 0; i < n; ++i) {
    const std::string at = "sentence " + std::to_string(i);
    if (pack.sentences[i].empty()) fail(path, "offsets", at + ": empty sentence (needs at least one token)");
    detail::check_ids(pack.sentences[i], pack.vocab_size, path, "tokens", at);
    if (pack.labels[i] < 0 || static_cast<std::size_t>(pack.labels[i]) >= k)
      fail(path, "labels", at + ": label " + std::to_string(pack.labels[i]) + " is not a class index in [0, " +
                               std::to_string(k) + ")");
    const auto s = static_cast<unsigned>(pack.split[i]);
    if (s > 2) fail(path, "split", at + ": value " + std::to_string(s) + " is not 0 (train), 1 (dev) or 2 (test)");
    ++count[s];
  }
  for (unsigned s = 0; s < 3; ++s) {
    if (count[s] == 0)
      fail(path, "split", std::string("no ") + split_name(static_cast<Split>(s)) +
                              " sentences (a probe trains on train, stops early on dev, scores on test)");
  }
}

}  // namespace

ProbePack read_probe_pack(const std::string& path) {
  h5::Handle f = detail::open_pack(path, kFormat, kFormatVersion, kFormatVersion);
  ProbePack pack;
  pack.path = path;
  pack.name = h5::read_string_attr(f, "name", path);
  pack.tokenizer = h5::read_string_attr(f, "tokenizer", path);
  pack.vocab_size = h5::read_int_attr(f, "vocab_size", path);
  pack.labels = h5::read_i32(f, "labels", path);
  const auto split = h5::read_u8(f, "split", path);
  pack.label_names = h5::read_strings(f, "label_names", path);
  const std::size_t n = pack.labels.size();
  const auto sentences = detail::read_ragged_i32(f, "tokens", "offsets", n, path, "sentence");
  f.close();

  pack.sentences.resize(n);
  for (std::size_t i = 0; i < n; ++i) pack.sentences[i] = sentences.row(i);
  pack.split.reserve(split.size());
  for (std::size_t i = 0; i < split.size(); ++i) {
    if (split[i] > 2)
      fail(path, "split", "sentence " + std::to_string(i) + ": value " + std::to_string(split[i]) +
                              " is not 0 (train), 1 (dev) or 2 (test)");
    pack.split.push_back(static_cast<Split>(split[i]));
  }
  validate(pack, path);
  return pack;
}

void write_probe_pack(const std::string& path, const ProbePack& pack) {
  validate(pack, path);
  detail::Ragged<std::int32_t> sentences;
  for (const auto& s : pack.sentences) sentences.push_row(s);
  std::vector<std::uint8_t> split;
  for (Split s : pack.split) split.push_back(static_cast<std::uint8_t>(s));
  detail::write_pack(path, kFormat, kFormatVersion, [&](const h5::Handle& f) {
    h5::write_string_attr(f, "name", pack.name, path);
    h5::write_string_attr(f, "tokenizer", pack.tokenizer, path);
    h5::write_int_attr(f, "vocab_size", pack.vocab_size, path);
    detail::write_ragged_i32(f, "tokens", "offsets", sentences, path);
    h5::write_i32(f, "labels", pack.labels, path);
    h5::write_u8(f, "split", split, path);
    h5::write_strings(f, "label_names", pack.label_names, path);
  });
}

}  // namespace ms::eval
