#include "mergesweep/sweep/result_codec.hpp"

#include <cstring>

#include <nlohmann/json.hpp>

namespace ms::sweep {

using nlohmann::json;

namespace {

// Per-item columns travel as CBOR byte strings of their elements (tens of thousands of values a
// task: a JSON array of numbers would cost several times the bytes and the time). Sender and
// receiver are ranks of one job, so they share the byte order.
template <class T>
json blob(const std::vector<T>& v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(v.data());
  return json::binary(std::vector<std::uint8_t>(p, p + v.size() * sizeof(T)));
}

template <class T>
std::vector<T> unblob(const json& j) {
  const auto& b = j.get_binary();
  std::vector<T> v(b.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), b.data(), v.size() * sizeof(T));
  return v;
}

json encode_items(const archive::ItemOutcomes& x) {
  return {x.config_id,      x.task,           x.kind,           blob(x.outcome),  blob(x.chosen),
          blob(x.gold_loglik), blob(x.doc_loglik), blob(x.doc_tokens), blob(x.doc_words), blob(x.doc_bytes)};
}

archive::ItemOutcomes decode_items(const json& x) {
  archive::ItemOutcomes it;
  it.config_id = x[0].get<std::uint64_t>();
  it.task = x[1];
  it.kind = x[2];
  it.outcome = unblob<std::uint8_t>(x[3]);
  it.chosen = unblob<std::int32_t>(x[4]);
  it.gold_loglik = unblob<float>(x[5]);
  it.doc_loglik = unblob<double>(x[6]);
  it.doc_tokens = unblob<std::int64_t>(x[7]);
  it.doc_words = unblob<std::int64_t>(x[8]);
  it.doc_bytes = unblob<std::int64_t>(x[9]);
  return it;
}

}  // namespace

std::vector<std::uint8_t> encode_result(const archive::ConfigResult& r) {
  json j;
  const auto& c = r.config;
  j["c"] = {c.id, c.kind, c.method, c.params, c.n, c.sample, c.members};
  json res = json::array();
  for (const auto& x : r.results) res.push_back({x.config_id, x.task, x.metric, x.value, x.stderr_, x.n});
  j["r"] = res;
  json st = json::array();
  for (const auto& x : r.stats) st.push_back({x.config_id, x.l2_from_base, x.cos_mean, x.cos_min, x.cos_max, x.l2_by_kind});
  j["s"] = st;
  json pr = json::array();
  for (const auto& x : r.probes) pr.push_back({x.config_id, x.probe, x.layer, x.f1_mean, x.f1_std, x.seeds});
  j["p"] = pr;
  const auto& t = r.timing;
  j["t"] = {t.config_id, t.merge_s, t.eval_s, t.probe_s, t.total_s, t.group};
  // Responses travel as CBOR byte strings: any bytes (NUL, invalid UTF-8) arrive unchanged.
  json gen = json::array();
  for (const auto& g : r.generations)
    gen.push_back({g.config_id, g.task, g.item, g.stop, g.tokens,
                   json::binary(std::vector<std::uint8_t>(g.text.begin(), g.text.end()))});
  j["g"] = gen;
  json items = json::array();
  for (const auto& x : r.items) items.push_back(encode_items(x));
  j["i"] = items;
  json prints = json::array();
  for (const auto& f : r.fingerprints) prints.push_back({f.config_id, f.fingerprint, f.dtype});
  j["f"] = prints;
  return json::to_cbor(j);
}

archive::ConfigResult decode_result(const std::vector<std::uint8_t>& bytes) {
  const json j = json::from_cbor(bytes);
  archive::ConfigResult r;
  const auto& c = j.at("c");
  r.config = {c[0].get<std::uint64_t>(), c[1], c[2], c[3], c[4], c[5], c[6].get<std::vector<std::int32_t>>()};
  for (const auto& x : j.at("r"))
    r.results.push_back({x[0].get<std::uint64_t>(), x[1], x[2], x[3], x[4], x[5]});
  for (const auto& x : j.at("s")) {
    archive::ModelStatRecord s;
    s.config_id = x[0];
    s.l2_from_base = x[1], s.cos_mean = x[2], s.cos_min = x[3], s.cos_max = x[4];
    s.l2_by_kind = x[5].get<std::map<std::string, double>>();
    r.stats.push_back(std::move(s));
  }
  for (const auto& x : j.at("p")) r.probes.push_back({x[0].get<std::uint64_t>(), x[1], x[2], x[3], x[4], x[5]});
  const auto& t = j.at("t");
  r.timing = {t[0].get<std::uint64_t>(), t[1], t[2], t[3], t[4], t[5]};
  for (const auto& x : j.at("g")) {
    const auto& text = x[5].get_binary();
    r.generations.push_back({x[0].get<std::uint64_t>(), x[1], x[2], x[3], x[4].get<std::vector<std::int32_t>>(),
                             std::string(text.begin(), text.end())});
  }
  for (const auto& x : j.at("i")) r.items.push_back(decode_items(x));
  for (const auto& x : j.at("f")) r.fingerprints.push_back({x[0].get<std::uint64_t>(), x[1].get<std::uint64_t>(), x[2]});
  return r;
}

}  // namespace ms::sweep
