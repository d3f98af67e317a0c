#include "eval_generations.hpp"

#include "mergesweep/eval/generate.hpp"
#include "mergesweep/io/fs_util.hpp"

namespace ms::cli {

nlohmann::ordered_json generations_json(const eval::TaskResult& t) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& g : t.generations)
    list.push_back({{"text", g.text}, {"tokens", g.tokens}, {"stop", eval::stop_name(g.stop)}});
  return list;
}

void write_generations_jsonl(const std::string& path, const std::vector<eval::TaskPack>& packs,
                             const eval::EvalResult& res) {
  std::string out;
  for (std::size_t k = 0; k < res.tasks.size(); ++k) {
    const eval::TaskResult& t = res.tasks[k];
    const auto& doc_ids = packs[k].generation.doc_ids;
    for (std::size_t i = 0; i < t.generations.size(); ++i) {
      const eval::Generation& g = t.generations[i];
      nlohmann::ordered_json line;
      line["task"] = t.name;
      line["item"] = i;
      if (i < doc_ids.size()) line["doc_id"] = doc_ids[i];
      line["text"] = g.text;
      line["tokens"] = g.tokens;
      line["stop"] = eval::stop_name(g.stop);
      out += line.dump() + "\n";
    }
  }
  io::write_text_file(path, out);
}

}  // namespace ms::cli
