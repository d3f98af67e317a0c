// `mergesweep archive export`: the committed rows as tidy CSV (or Parquet) tables. The layout is
// the one documented in docs/formats.md ("`mergesweep archive`", export); analysis/ reads it, never writes another.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "format.hpp"
#include "mergesweep/archive/archive.hpp"
#include "mergesweep/archive/tools.hpp"
#include "mergesweep/core/error.hpp"
#include "mergesweep/core/fingerprint.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace ms::archive {
namespace {

std::string num(double v) {
  if (std::isnan(v)) return "";
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

std::string csv(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string o = "\"";
  for (char ch : s) o += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return o + "\"";
}

// The checkpoints' names (model number -> name), for member_names.
using Names = std::map<std::int32_t, std::string>;

std::string config_cols(const ConfigRecord& c, const Names& names) {
  return std::to_string(c.id) + "," + csv(c.kind) + "," + csv(c.method) + "," + csv(c.params) + "," +
         std::to_string(c.n) + "," + std::to_string(c.sample) + "," + csv(format::members_text(c.members)) + "," +
         csv(member_names_text(c.members, names));
}
const char* const kConfigHeader = "config_id,kind,method,params,n,sample,members,member_names";

// Writes a file under a temporary name in the same folder, then renames it into place.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp-" + std::to_string(::getpid())) {
    out_.open(tmp_, std::ios::binary | std::ios::trunc);
    if (!out_) fail(path_, "", "cannot create the file");
  }
  ~AtomicFile() {
    if (!done_) {
      out_.close();
      std::remove(tmp_.c_str());
    }
  }
  std::ofstream& out() { return out_; }
  void commit() {
    out_.close();
    if (!out_) fail(path_, "", "write failed");
    fs::rename(tmp_, path_);
    done_ = true;
  }

 private:
  std::string path_, tmp_;
  std::ofstream out_;
  bool done_ = false;
};

// Runs `argv` (argv[0] looked up on PATH) without a shell and waits; its output is discarded
// when `quiet`. Returns the exit status (127 when it cannot be started).
int run_program(const std::vector<std::string>& argv, bool quiet) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return 127;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 127;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string export_python() {
  const char* py = std::getenv("MS_PYTHON");
  return py && *py ? py : "python3";
}

// Parquet: pandas reads each CSV (config_id as uint64) and pyarrow writes it; the CSVs are removed.
// In generations.csv an empty field is an empty text or token list, never a missing value.
constexpr const char* kToParquet =
    "import sys, os, pandas as pd\n"
    "for p in sys.argv[1:]:\n"
    "    gen = p.endswith('generations.csv')\n"
    "    df = pd.read_csv(p, dtype={'config_id': 'uint64', 'params': str, 'members': str, 'tokens': str, 'text': str,"
    " 'text_hex': str, 'task': str, 'failure': str, 'message': str, 'fingerprint': str, 'member_names': str}, keep_default_na=False, na_values=[] if gen else [''])\n"
    "    df.to_parquet(p[:-4] + '.parquet', index=False)\n"
    "    os.remove(p)\n";

void check_parquet_tools(const std::string& py) {
  // Before any work: parquet needs pyarrow in the Python that runs the conversion.
  if (run_program({py, "-c", "import pandas, pyarrow"}, /*quiet=*/true) != 0)
    fail("", "--format parquet",
         "needs Python with pandas and pyarrow (" + py + " cannot import them; set MS_PYTHON to another "
         "interpreter, or export CSV: --format csv)");
}

std::vector<std::string> to_parquet(const std::vector<std::string>& csv_files, const std::string& out_dir,
                                    const std::string& py) {
  std::vector<std::string> argv = {py, "-c", kToParquet};
  argv.insert(argv.end(), csv_files.begin(), csv_files.end());
  if (run_program(argv, /*quiet=*/false) != 0)
    fail(out_dir, "--format parquet", "the conversion to Parquet failed (" + py + ")");
  std::vector<std::string> out;
  out.reserve(csv_files.size());
  for (const auto& w : csv_files) out.push_back(w.substr(0, w.size() - 4) + ".parquet");
  return out;
}

// One writer per table of the layout.
void write_checkpoints(std::ostream& o, const Contents& c, const Names&) {
  o << "model,name,path,sha256,bytes\n";
  for (const auto& k : c.checkpoints)
    o << k.model << "," << csv(k.name) << "," << csv(k.path) << "," << k.sha256 << "," << k.bytes << "\n";
}

void write_tasks(std::ostream& o, const Contents& c, const Names&) {
  o << "name,kind,path,sha256,items\n";
  for (const auto& t : c.tasks)
    o << csv(t.name) << "," << csv(t.kind) << "," << csv(t.path) << "," << t.sha256 << "," << t.items << "\n";
}

void write_configs(std::ostream& o, const Contents& c, const Names& names) {
  o << kConfigHeader << "\n";
  for (const auto& r : c.configs) o << config_cols(r.config, names) << "\n";
}

void write_results(std::ostream& o, const Contents& c, const Names& names) {
  o << kConfigHeader << ",task,metric,value,stderr,items\n";
  for (const auto& r : c.configs) {
    const std::string cc = config_cols(r.config, names);
    for (const auto& x : r.results)
      o << cc << "," << csv(x.task) << "," << csv(x.metric) << "," << num(x.value) << "," << num(x.stderr_) << ","
        << x.n << "\n";
  }
}

void write_model_stats(std::ostream& o, const Contents& c, const Names& names) {
  o << kConfigHeader << ",l2_from_base,cos_mean,cos_min,cos_max";
  for (const auto& k : format::l2_kinds()) o << ",l2_" << k;
  o << "\n";
  for (const auto& r : c.configs)
    for (const auto& s : r.stats) {
      o << config_cols(r.config, names) << "," << num(s.l2_from_base) << "," << num(s.cos_mean) << "," << num(s.cos_min)
        << "," << num(s.cos_max);
      for (const auto& k : format::l2_kinds()) {
        const auto it = s.l2_by_kind.find(k);
        o << "," << (it == s.l2_by_kind.end() ? std::string() : num(it->second));
      }
      o << "\n";
    }
}

void write_probes(std::ostream& o, const Contents& c, const Names& names) {
  o << kConfigHeader << ",probe,layer,f1_mean,f1_std,seeds\n";
  for (const auto& r : c.configs)
    for (const auto& p : r.probes)
      o << config_cols(r.config, names) << "," << csv(p.probe) << "," << p.layer << "," << num(p.f1_mean) << ","
        << num(p.f1_std) << "," << p.seeds << "\n";
}

void write_timings(std::ostream& o, const Contents& c, const Names& names) {
  o << kConfigHeader << ",merge_s,eval_s,probe_s,total_s,group\n";
  for (const auto& r : c.configs) {
    const auto& t = r.timing;
    o << config_cols(r.config, names) << "," << num(t.merge_s) << "," << num(t.eval_s) << "," << num(t.probe_s) << ","
      << num(t.total_s) << "," << t.group << "\n";
  }
}

// Appends code point `cp` as UTF-8.
void put_utf8(std::string& o, std::uint32_t cp) {
  if (cp < 0x80) {
    o += static_cast<char>(cp);
  } else if (cp < 0x800) {
    o += static_cast<char>(0xC0 | (cp >> 6));
    o += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    o += static_cast<char>(0xE0 | (cp >> 12));
    o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    o += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

// Bytes as text the way Python's bytes.decode("utf-8", "replace") does: each maximal ill-formed
// subpart (Unicode's "best practice", table 3-7 of the standard) becomes one U+FFFD. NUL bytes
// also become U+FFFD: CSV readers (pandas) end a field at NUL. The exact bytes are in text_hex.
std::string decode_for_csv(const std::string& bytes) {
  std::string o;
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t n = bytes.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned c = b[i];
    if (c < 0x80) {
      if (c == 0) put_utf8(o, 0xFFFD);
      else o += static_cast<char>(c);
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {  // no overlong forms (E0), no surrogates (ED)
      len = 3;
      lo = c == 0xE0 ? 0xA0 : 0x80;
      hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {  // no overlong forms (F0), nothing above U+10FFFF (F4)
      len = 4;
      lo = c == 0xF0 ? 0x90 : 0x80;
      hi = c == 0xF4 ? 0x8F : 0xBF;
    }
    std::size_t k = 1;  // bytes of a well-formed prefix
    if (len > 0 && i + 1 < n && b[i + 1] >= lo && b[i + 1] <= hi) {
      k = 2;
      while (k < len && i + k < n && b[i + k] >= 0x80 && b[i + k] <= 0xBF) ++k;
    }
    if (len > 0 && k == len) o.append(bytes, i, len);
    else put_utf8(o, 0xFFFD);
    i += k;
  }
  return o;
}

namespace {

std::string hex_of(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string o;
  o.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    o += d[c >> 4];
    o += d[c & 15];
  }
  return o;
}

void write_generations(std::ostream& o, const Contents& c, const Names& names) {
  o << kConfigHeader << ",task,item,stop,n_tokens,tokens,text_bytes,text,text_hex\n";
  for (const auto& r : c.configs) {
    const std::string cc = config_cols(r.config, names);
    for (const auto& g : r.generations) {
      std::string ids;
      for (std::size_t i = 0; i < g.tokens.size(); ++i) ids += (i ? " " : "") + std::to_string(g.tokens[i]);
      o << cc << "," << csv(g.task) << "," << g.item << "," << g.stop << "," << g.tokens.size() << "," << ids << ","
        << g.text.size() << "," << csv(decode_for_csv(g.text)) << "," << hex_of(g.text) << "\n";
    }
  }
}

// float32 as the shortest decimal that reads back to the same float (9 significant digits).
std::string num32(float v) {
  if (std::isnan(v)) return "";
  char b[24];
  std::snprintf(b, sizeof b, "%.9g", static_cast<double>(v));
  return b;
}

// One row per config, multiple_choice task and item; the outcome bits as 0/1 columns.
void write_items(std::ostream& o, const Contents& c, const Names& names) {
  o << kConfigHeader << ",task,item,acc,acc_norm,acc_bytes,exact_match,chosen,gold_loglik\n";
  for (const auto& r : c.configs) {
    const std::string cc = config_cols(r.config, names);
    for (const auto& it : r.items) {
      if (it.kind != "choice") continue;
      const std::string task = csv(it.task);
      for (std::size_t i = 0; i < it.outcome.size(); ++i) {
        const unsigned v = it.outcome[i];
        o << cc << "," << task << "," << i << "," << (v & 1) << "," << ((v >> 1) & 1) << "," << ((v >> 2) & 1) << ","
          << ((v >> 3) & 1) << "," << it.chosen[i] << "," << num32(it.gold_loglik[i]) << "\n";
      }
    }
  }
}

// One row per config, loglikelihood_rolling task and document.
void write_item_docs(std::ostream& o, const Contents& c, const Names& names) {
  o << kConfigHeader << ",task,doc,loglik,tokens,words,bytes\n";
  for (const auto& r : c.configs) {
    const std::string cc = config_cols(r.config, names);
    for (const auto& it : r.items) {
      if (it.kind != "rolling") continue;
      for (std::size_t d = 0; d < it.doc_loglik.size(); ++d)
        o << cc << "," << csv(it.task) << "," << d << "," << num(it.doc_loglik[d]) << "," << it.doc_tokens[d] << ","
          << it.doc_words[d] << "," << it.doc_bytes[d] << "\n";
    }
  }
}

// The fingerprint as 16 hex digits (as `archive model` prints it; a uint64 column would not
// survive tools that read integers as int64 or float).
void write_fingerprints(std::ostream& o, const Contents& c, const Names& names) {
  o << kConfigHeader << ",fingerprint,dtype\n";
  for (const auto& r : c.configs)
    for (const auto& f : r.fingerprints)
      o << config_cols(r.config, names) << "," << fingerprint_hex(f.fingerprint) << "," << csv(f.dtype) << "\n";
}

void write_failures(std::ostream& o, const Contents& c, const Names& names) {
  o << kConfigHeader << ",failure,message,group,session,time\n";
  for (const auto& f : c.failures)
    o << config_cols(f.config, names) << "," << csv(f.failure) << "," << csv(f.message) << "," << f.group << "," << f.session
      << "," << num(f.time) << "\n";
}

}  // namespace

std::vector<std::string> export_tables(const std::string& path, const std::string& out_dir, const std::string& fmt) {
  if (fmt != "csv" && fmt != "parquet") fail("", "--format", "'" + fmt + "' is not csv or parquet");
  const std::string py = export_python();
  if (fmt == "parquet") check_parquet_tools(py);
  const Contents c = read(path);
  const Names names = model_names(c.checkpoints);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (!fs::is_directory(out_dir)) fail(out_dir, "--out", "cannot create the output folder");
  using TableWriter = void (*)(std::ostream&, const Contents&, const Names&);
  const std::pair<const char*, TableWriter> files[] = {
      {"checkpoints.csv", write_checkpoints}, {"tasks.csv", write_tasks},     {"configs.csv", write_configs},
      {"results.csv", write_results},         {"model_stats.csv", write_model_stats},
      {"probes.csv", write_probes},           {"timings.csv", write_timings},
      {"generations.csv", write_generations}, {"failures.csv", write_failures},
      {"items.csv", write_items},             {"item_docs.csv", write_item_docs},
      {"fingerprints.csv", write_fingerprints},
  };
  std::vector<std::string> written;
  for (const auto& [name, write] : files) {
    AtomicFile af(out_dir + "/" + name);
    write(af.out(), c, names);
    af.commit();
    written.push_back(out_dir + "/" + name);
  }
  return fmt == "csv" ? written : to_parquet(written, out_dir, py);
}

}  // namespace ms::archive
