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
  m.push_back(breadcrumbs());
  m.push_back(breadcrumbs_ties());
  m.push_back(sce());
  m.push_back(della());
  m.push_back(della_linear());
  m.push_back(nuslerp());
  m.push_back(multislerp());
  m.push_back(karcher());
  m.push_back(nearswap());
  m.push_back(arcee_fusion());
  m.push_back(ram());
  m.push_back(ramplus_tl());
  m.push_back(passthrough());
  return m;
}

}  // namespace ms::merge::methods
