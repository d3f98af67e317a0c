"""mergesweep analysis: turns sweep archives into the studies' tables and figures.

`python3 -m analysis report ARCHIVE --out DIR` (also `mergesweep report`), `summary`, `findings`,
`info`, `sizing`; modules: reader (HDF5 archive -> DataFrames, committed rows only), api
(`analysis.load(ARCHIVE)`: tidy frames for notebooks), stats (the studies' statistics, pure
functions of DataFrames), intervals (Wilson, bootstrap, Holm / Benjamini-Hochberg), findings,
figures, report, sizing. Flat tables of an archive are the engine's (`mergesweep archive
export`, layout in docs/formats.md). Guide: docs/analysis.md.
"""


def load(path):
    """The committed rows of a sweep archive as tidy pandas frames (analysis.api.Frames):
    configs, results, model_stats, probes, timings, generations, failures, items, ..."""
    from .api import load as _load  # pandas and h5py only when asked for

    return _load(path)
