// The task families and probe properties of the testbed. Wrong answers are built from the right
// one by the mistakes a half-trained model makes (an off-by-one digit, a swapped pair, the input
// copied instead of transformed), so the four choices stay hard to tell apart by surface alone.
#include "mergesweep/testbed/tasks.hpp"

#include <algorithm>
#include <set>

#include "mergesweep/core/error.hpp"
#include "rng.hpp"

namespace ms::testbed {
namespace {

std::string letters(Rng& rng, int n, char first = 'a', char last = 'z') {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>(rng.range(first, last));
  return s;
}

// Adds candidates (in a random order) until three distinct wrong answers are found; `mutate`
// makes more when the fixed candidates run out.
template <class Mutate>
std::vector<std::string> pick_distractors(Rng& rng, const std::string& answer, std::vector<std::string> fixed,
                                          Mutate mutate) {
  rng.shuffle(fixed);
  std::vector<std::string> out;
  auto add = [&](const std::string& c) {
    if (c.empty() || c == answer || std::find(out.begin(), out.end(), c) != out.end()) return;
    if (out.size() < 3) out.push_back(c);
  };
  for (const auto& c : fixed) add(c);
  for (int tries = 0; out.size() < 3; ++tries) {
    if (tries > 1000) fail("", "testbed", "cannot build distractors for answer '" + answer + "'");
    add(mutate());
  }
  return out;
}

std::string substitute(Rng& rng, std::string s, char first, char last) {
  const std::size_t i = rng.below(s.size());
  char c;
  do c = static_cast<char>(rng.range(first, last)); while (c == s[i]);
  s[i] = c;
  return s;
}

std::string swap_adjacent(Rng& rng, std::string s) {
  if (s.size() < 2) return s;
  const std::size_t i = rng.below(s.size() - 1);
  std::swap(s[i], s[i + 1]);
  return s;
}

// Numbers near n (never negative): the off-by-one and off-by-ten slips of digit arithmetic.
std::vector<std::string> near_numbers(int n, std::initializer_list<int> offsets) {
  std::vector<std::string> v;
  for (int d : offsets) {
    if (n + d >= 0) v.push_back(std::to_string(n + d));
  }
  return v;
}

Example arith(Rng& rng) {
  const int a = rng.range(0, 99), b = rng.range(0, 99), s = a + b;
  Example e{std::to_string(a) + "+" + std::to_string(b) + "=", std::to_string(s), {}};
  e.distractors = pick_distractors(rng, e.answer, near_numbers(s, {1, -1, 10, -10, 2, -2, 11, -9}),
                                   [&] { return std::to_string(s + rng.range(-20, 20)); });
  return e;
}

Example copy(Rng& rng) {
  const std::string w = letters(rng, rng.range(4, 7));
  Example e{"copy:" + w + "=", w, {}};
  e.distractors = pick_distractors(rng, w, {swap_adjacent(rng, w), substitute(rng, w, 'a', 'z')}, [&] {
    return rng.below(2) ? substitute(rng, w, 'a', 'z') : swap_adjacent(rng, substitute(rng, w, 'a', 'z'));
  });
  return e;
}

Example reverse(Rng& rng) {
  const std::string w = letters(rng, rng.range(4, 7));
  std::string r(w.rbegin(), w.rend());
  Example e{"rev:" + w + "=", r, {}};
  e.distractors = pick_distractors(rng, r, {w, swap_adjacent(rng, r)},
                                   [&] { return rng.below(2) ? substitute(rng, r, 'a', 'z') : swap_adjacent(rng, r); });
  return e;
}

Example sort(Rng& rng) {
  const std::string w = letters(rng, rng.range(6, 9), 'a', 'p');
  std::string s = w;
  std::sort(s.begin(), s.end());
  // A sorted string with one letter changed is still sorted: content, not just order, must match.
  auto resorted = [&] {
    std::string t = substitute(rng, s, 'a', 'p');
    std::sort(t.begin(), t.end());
    return t;
  };
  Example e{"sort:" + w + "=", s, {}};
  e.distractors = pick_distractors(rng, s, {resorted(), resorted(), swap_adjacent(rng, s)}, resorted);
  return e;
}

Example count(Rng& rng) {
  const int n = rng.range(6, 10);
  const std::string s = letters(rng, n, 'a', 'c');
  const char target = static_cast<char>(rng.range('a', 'c'));
  const int c = static_cast<int>(std::count(s.begin(), s.end(), target));
  Example e{"count " + std::string(1, target) + ":" + s + "=", std::to_string(c), {}};
  e.distractors = pick_distractors(rng, e.answer, near_numbers(c, {1, -1, 2, -2, 3}),
                                   [&] { return std::to_string(rng.range(0, n)); });
  return e;
}

char closer(char open) { return open == '(' ? ')' : open == '[' ? ']' : open == '{' ? '}' : '>'; }

std::string close_all(const std::string& stack) {
  std::string out;
  for (auto it = stack.rbegin(); it != stack.rend(); ++it) out += closer(*it);
  return out;
}

Example brackets(Rng& rng) {
  static const char kOpen[] = {'(', '[', '{', '<'};
  const int len = rng.range(4, 10);
  std::string seq, stack;
  for (int i = 0; i < len || stack.empty(); ++i) {
    if (stack.empty() || (stack.size() < 5 && rng.uniform() < 0.6)) {
      const char o = kOpen[rng.below(4)];
      seq += o;
      stack += o;
    } else {
      seq += closer(stack.back());
      stack.pop_back();
    }
  }
  const std::string ans = close_all(stack);
  std::string fwd;  // the right closers in the wrong (opening) order
  for (char o : stack) fwd += closer(o);
  auto retype = [&] {
    std::string t = ans;
    const std::size_t i = rng.below(t.size());
    const char kClose[] = {')', ']', '}', '>'};
    char c;
    do c = kClose[rng.below(4)]; while (c == t[i]);
    t[i] = c;
    return t;
  };
  auto resize = [&] {  // one closer too many or too few
    if (ans.size() > 1 && rng.below(2)) return ans.substr(0, ans.size() - 1);
    return ans + ans.back();
  };
  Example e{"close:" + seq + "=", ans, {}};
  e.distractors = pick_distractors(rng, ans, {fwd, retype(), swap_adjacent(rng, ans)},
                                   [&] { return rng.below(2) ? retype() : resize(); });
  return e;
}

Example lookup(Rng& rng) {
  std::vector<char> keys;
  for (char c = 'a'; c <= 'z'; ++c) keys.push_back(c);
  std::vector<char> vals;
  for (char c = '0'; c <= '9'; ++c) vals.push_back(c);
  rng.shuffle(keys);
  rng.shuffle(vals);
  const int pairs = 4;
  std::string table;
  for (int i = 0; i < pairs; ++i) table += (i ? " " : "") + std::string{keys[i], vals[i]};
  const int q = rng.range(0, pairs - 1);
  // The query comes last, right before '=': recall by matching the key seen earlier (the
  // associative-recall pattern induction heads solve).
  Example e{"find:" + table + "?" + std::string(1, keys[q]) + "=", std::string(1, vals[q]), {}};
  std::vector<std::string> others;  // the values of the other keys
  for (int i = 0; i < pairs; ++i) {
    if (i != q) others.emplace_back(1, vals[i]);
  }
  e.distractors = pick_distractors(rng, e.answer, others, [&] { return std::to_string(rng.range(0, 9)); });
  return e;
}

Example sequence(Rng& rng) {
  const int start = rng.range(0, 40), step = rng.range(1, 9);
  std::string p = "seq:";
  for (int i = 0; i < 4; ++i) p += (i ? "," : "") + std::to_string(start + i * step);
  const int next = start + 4 * step;
  Example e{p + "=", std::to_string(next), {}};
  e.distractors = pick_distractors(rng, e.answer, near_numbers(next, {1, -1, step, -step, 10, -10}),
                                   [&] { return std::to_string(next + rng.range(-12, 12)); });
  return e;
}

// ---- generation families: the answer is generated, so no distractors ----

// A different prompt and length range from `reverse`: the held-out items test greedy decoding of
// the whole string, which multiple choice among near-misses does not.
Example gen_reverse(Rng& rng) {
  const std::string w = letters(rng, rng.range(3, 7));
  return {"reverse:" + w + "=", std::string(w.rbegin(), w.rend()), {}};
}

Example gen_digitsum(Rng& rng) {
  const std::string d = letters(rng, rng.range(2, 4), '0', '9');
  int sum = 0;
  for (char c : d) sum += c - '0';
  return {"digitsum:" + d + "=", std::to_string(sum), {}};
}

// ---- probes -----------------------------------------------------------------------------------

ProbeSentence depth(Rng& rng, std::int32_t label) {
  const int d = label + 1;
  static const char kOpen[] = {'(', '[', '{'};
  for (;;) {
    const int pairs = rng.range(std::max(d, 3), 9);
    std::string s, stack;
    int opened = 0, max_depth = 0;
    while (opened < pairs || !stack.empty()) {
      const bool can_open = opened < pairs && static_cast<int>(stack.size()) < d;
      if (can_open && (stack.empty() || rng.below(2))) {
        const char o = kOpen[rng.below(3)];
        s += o;
        stack += o;
        ++opened;
        max_depth = std::max(max_depth, static_cast<int>(stack.size()));
      } else {
        s += closer(stack.back());
        stack.pop_back();
      }
    }
    if (max_depth == d) return {s, label};
  }
}

ProbeSentence parity(Rng& rng, std::int32_t label) {
  std::string s = letters(rng, rng.range(6, 14), '0', '1');
  if (std::count(s.begin(), s.end(), '1') % 2 != label) {
    char& c = s[rng.below(s.size())];
    c = c == '0' ? '1' : '0';
  }
  return {s, label};
}

ProbeSentence length(Rng& rng, std::int32_t label) {
  return {letters(rng, rng.range(4 + 6 * label, 9 + 6 * label)), label};
}

ProbeSentence majority(Rng& rng, std::int32_t label) {
  for (;;) {
    const std::string s = letters(rng, rng.range(7, 15), 'a', 'c');
    int n[3] = {0, 0, 0};
    for (char c : s) ++n[c - 'a'];
    const int top = std::max({n[0], n[1], n[2]});
    if (n[label] == top && std::count(n, n + 3, top) == 1) return {s, label};
  }
}

bool is_balanced(const std::string& s) {
  std::string stack;
  for (char c : s) {
    if (c == '(' || c == '[' || c == '{' || c == '<') {
      stack += c;
    } else if (stack.empty() || closer(stack.back()) != c) {
      return false;
    } else {
      stack.pop_back();
    }
  }
  return stack.empty();
}

// Label 1: a balanced string of 3-6 pairs; label 0: the same kind of string with one closer
// retyped or two adjacent characters swapped (same length and alphabet, so only structure tells).
ProbeSentence balanced(Rng& rng, std::int32_t label) {
  static const char kOpen[] = {'(', '[', '{'};
  for (;;) {
    const int pairs = rng.range(3, 6);
    std::string s, stack;
    int opened = 0;
    while (opened < pairs || !stack.empty()) {
      if (opened < pairs && (stack.empty() || rng.below(2))) {
        const char o = kOpen[rng.below(3)];
        s += o;
        stack += o;
        ++opened;
      } else {
        s += closer(stack.back());
        stack.pop_back();
      }
    }
    if (label == 1) return {s, 1};
    const std::string broken = rng.below(2) ? swap_adjacent(rng, s) : [&] {
      std::string t = s;
      std::size_t i;
      do i = rng.below(t.size()); while (t[i] != ')' && t[i] != ']' && t[i] != '}');
      t[i] = t[i] == ')' ? ']' : t[i] == ']' ? '}' : ')';
      return t;
    }();
    if (!is_balanced(broken)) return {broken, 0};  // a swap can rebalance: '()()' -> '(())'
  }
}

// Label 1: 5-9 letters a-j in non-decreasing order; label 0: the same letters, not sorted.
ProbeSentence sorted(Rng& rng, std::int32_t label) {
  for (;;) {
    std::string s = letters(rng, rng.range(5, 9), 'a', 'j');
    std::string t = s;
    std::sort(t.begin(), t.end());
    if (label == 1) return {t, 1};
    if (s != t) return {s, 0};
  }
}

}  // namespace

const std::vector<TaskFamily>& task_families() {
  static const std::vector<TaskFamily> kFamilies = {
      {"arith", "two-digit addition: '37+45=' -> '82'", arith, false},
      {"copy", "copy 4-7 letters: 'copy:xkqm=' -> 'xkqm'", copy, false},
      {"reverse", "reverse 4-7 letters: 'rev:abcd=' -> 'dcba'", reverse, false},
      {"sort", "sort 6-9 letters a-p: 'sort:dbca=' -> 'abcd'", sort, false},
      {"count", "count a letter in a string over a-c: 'count a:abacab=' -> '3'", count, false},
      {"brackets", "close the brackets a prefix left open: 'close:([]{=' -> '})'", brackets, false},
      {"lookup", "key-value recall: 'find:a3 c7 b1 d9?c=' -> '7'", lookup, false},
      {"sequence", "next term of an arithmetic sequence: 'seq:3,7,11,15=' -> '19'", sequence, false},
      {"gen_reverse", "generate 3-7 letters reversed: 'reverse:abcd=' -> 'dcba'", gen_reverse, true},
      {"gen_digitsum", "generate the sum of 2-4 digits: 'digitsum:395=' -> '17'", gen_digitsum, true},
  };
  return kFamilies;
}

const TaskFamily& task_family(const std::string& name) {
  for (const auto& f : task_families()) {
    if (f.name == name) return f;
  }
  fail("", "testbed family", "unknown family '" + name + "'");
}

const std::vector<ProbeProperty>& probe_properties() {
  static const std::vector<ProbeProperty> kProps = {
      {"depth", "maximum nesting depth (1-4) of a balanced bracket string", {"1", "2", "3", "4"}, depth},
      {"parity", "parity of the number of 1s in a 0/1 string", {"even", "odd"}, parity},
      {"length", "length bucket of a letter string", {"4-9", "10-15", "16-21", "22-27"}, length},
      {"majority", "the most frequent letter of a string over a-c", {"a", "b", "c"}, majority},
      {"balanced", "whether a bracket string is balanced (or one closer retyped / a pair swapped)", {"no", "yes"},
       balanced},
      {"sorted", "whether 5-9 letters a-j are in sorted order", {"no", "yes"}, sorted},
  };
  return kProps;
}

}  // namespace ms::testbed
