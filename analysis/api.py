"""`analysis.load(ARCHIVE)`: an archive's committed rows as tidy pandas frames, for notebooks.

Each frame has one row per observation and one column per variable, keyed by `config_id`:
  configs      one row per config: config_id, kind, method, params (text), n, sample, members,
               member_names (the checkpoints' short names, comma-separated)
               (tuple), label (method plus the parameters that vary within it, e.g.
               task_arithmetic[lambda=0.5]: the "parameter point") and one param_<name> column each
  results      one row per config, task and metric: config_id, task, metric, value, stderr, items
  model_stats  one row per config: config_id, l2_from_base, cos_*, l2_<part>
  probes       one row per config, probe and layer: config_id, probe, layer, f1_mean, f1_std, seeds
  timings      one row per config: merge_s, eval_s, probe_s, total_s, group
  generations  one row per config, generate_until task and item (tokens, text, response)
  failures     one row per failed attempt (configs that failed and are not done: failed_not_done)
  items        one row per config, multiple_choice task and item (format version 4): config_id, task,
               item, acc, acc_norm, acc_bytes, exact_match (0/1), chosen, gold_loglik (float32)
  item_docs    one row per config, loglikelihood_rolling task and document: loglik, tokens, words,
               bytes (the perplexities' inputs)
  checkpoints, tasks, specs: the sweep's inputs.
Frames an archive lacks are empty. `attributes` holds the root attributes (provenance).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .reader import Archive, expand_params, read_archive
from .stats import method_labels

FRAMES = ("configs", "results", "model_stats", "probes", "timings", "generations", "failures", "items",
          "item_docs", "checkpoints", "tasks", "specs")


@dataclass
class Frames:
    path: str
    attributes: dict = field(default_factory=dict)
    configs: pd.DataFrame = field(default_factory=pd.DataFrame)
    results: pd.DataFrame = field(default_factory=pd.DataFrame)
    model_stats: pd.DataFrame = field(default_factory=pd.DataFrame)
    probes: pd.DataFrame = field(default_factory=pd.DataFrame)
    timings: pd.DataFrame = field(default_factory=pd.DataFrame)
    generations: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)
    items: pd.DataFrame = field(default_factory=pd.DataFrame)
    item_docs: pd.DataFrame = field(default_factory=pd.DataFrame)
    checkpoints: pd.DataFrame = field(default_factory=pd.DataFrame)
    tasks: pd.DataFrame = field(default_factory=pd.DataFrame)
    specs: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __iter__(self):  # name, frame pairs: dict(frames) or a loop over every table
        return ((name, getattr(self, name)) for name in FRAMES)

    def failed_not_done(self) -> pd.DataFrame:
        """The last failure of each config that failed and has no row in `configs`."""
        return Archive(self.path, tables={"configs": self.configs.rename(columns={"config_id": "id"}),
                                          "failures": self.failures}).failed_not_done()


def tidy_configs(configs: pd.DataFrame) -> pd.DataFrame:
    """configs keyed by config_id with its label and one param_<name> column per parameter."""
    if not len(configs.columns):
        return configs
    c = expand_params(configs.reset_index(drop=True))
    c.insert(c.columns.get_loc("method") + 1 if "method" in c else len(c.columns), "label",
             method_labels(c).values)
    return c.rename(columns={"id": "config_id"})


# leading columns per frame (the archive's groups list columns alphabetically)
FIRST = {"configs": ["config_id", "kind", "method", "label", "params", "n", "sample", "members", "member_names"],
         "results": ["config_id", "task", "metric", "value", "stderr", "items"],
         "probes": ["config_id", "probe", "layer", "f1_mean", "f1_std", "seeds"],
         "failures": ["config_id", "kind", "method", "params", "n", "sample", "members", "member_names", "failure",
                      "message"],
         "generations": ["config_id", "task", "item"]}


def _ordered(name: str, df: pd.DataFrame) -> pd.DataFrame:
    first = [c for c in FIRST.get(name, ["config_id"]) if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]].reset_index(drop=True)


def from_archive(a: Archive) -> Frames:
    """Frames of an Archive already read (analysis.reader.read_archive)."""
    kw = {name: a.table(name) for name in FRAMES}
    kw["configs"] = tidy_configs(a.configs)
    kw["failures"] = a.failures
    kw = {name: _ordered(name, df) for name, df in kw.items()}
    return Frames(path=a.path, attributes=dict(a.attributes), **kw)


def load(path) -> Frames:
    """The committed rows of the archive at `path` as tidy frames (module docstring)."""
    return from_archive(read_archive(str(path)))
