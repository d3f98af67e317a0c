// Text output shared by the `eval` tables: numbers as lm-eval prints them and markdown tables.
#pragma once

#include <string>
#include <vector>

namespace ms::cli {

// `v` with `digits` decimals; "N/A" for NaN (lm-eval's stderr of one item).
std::string fixed(double v, int digits = 4);

// A markdown table as lm-eval prints it: columns padded to their widest cell (UTF-8 code points),
// `right[c]` aligns column c to the right.
std::string table(const std::vector<std::string>& head, const std::vector<bool>& right,
                  const std::vector<std::vector<std::string>>& rows);

}  // namespace ms::cli
