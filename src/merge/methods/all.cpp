// The registration of every method: adding a method is its file, one line here, its factory's
// declaration in parts.hpp and its tests. The order is the order `mergesweep methods` lists.
#include "parts.hpp"

namespace ms::merge::methods {

std::vector<std::unique_ptr<Method>> make_all() {
  std::vector<std::unique_ptr<Method>> m;
  m.push_back(linear());
  m.push_back(slerp());
  m.push_back(task_arithmetic());
  m.push_back(ties());
  m.push_back(dare_ties());
  m.push_back(dare_linear());
  m.push_back(model_stock());
  m.push_back(tsv_m());
  m.push_back(iso_c());
  m.push_back(iso_cts());
  m.push_back(task_arithmetic_sb());
  m.push_back(ties_sb());
  return m;
}

}  // namespace ms::merge::methods
