// Checks shared by the task and probe pack readers: offset arrays and token id ranges, with
// errors that name the file, the dataset and the item.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ms::eval {
struct TaskPack;
// Structure and id checks of an in-memory task pack (used on read and before every write).
void validate_task_pack(const TaskPack& pack, const std::string& path);
}  // namespace ms::eval

namespace ms::eval::detail {

// `off` must have n+1 entries, start at 0, never decrease and end at `total`.
void check_offsets(const std::vector<std::int64_t>& off, std::size_t n, std::size_t total, const std::string& path,
                   const char* field, const char* unit);
// Every id in [0, vocab); `at` names the item ("item 3", "sentence 7") in the error.
void check_ids(const std::vector<std::int32_t>& ids, std::int64_t vocab, const std::string& path, const char* field,
               const std::string& at);

}  // namespace ms::eval::detail
