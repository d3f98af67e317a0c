#include "mergesweep/merge/registry.hpp"

#include "methods/parts.hpp"
#include "mergesweep/core/error.hpp"

namespace ms::merge {
namespace {

struct Registry {
  std::vector<std::unique_ptr<Method>> owned = methods::make_all();
  std::vector<const Method*> methods;
  Registry() {
    for (const auto& m : owned) methods.push_back(m.get());
  }
};

const Registry& registry() {
  static const Registry r;
  return r;
}

}  // namespace

const std::vector<const Method*>& all_methods() { return registry().methods; }

const Method* find_method(const std::string& name) {
  for (const Method* m : all_methods()) {
    if (m->name == name) return m;
  }
  return nullptr;
}

const Method& require_method(const std::string& name, const std::string& file) {
  if (const auto* m = find_method(name)) return *m;
  std::string names;
  for (const Method* m : all_methods()) names += (names.empty() ? "" : ", ") + m->name;
  fail(file, "merge_method", "unknown method '" + name + "'; known: " + names);
}

}  // namespace ms::merge
