"""mergesweep analysis: turns sweep archives into the studies' tables and figures.

`python3 -m analysis report ARCHIVE --out DIR` (also `mergesweep report`), `summary`, `info`,
`sizing`; modules: reader (HDF5 archive -> DataFrames, committed rows only), stats (the studies'
statistics, pure functions of DataFrames), figures, report, sizing. Flat tables of an archive are
the engine's (`mergesweep archive export`, layout in docs/formats.md). Guide: docs/analysis.md.
"""
