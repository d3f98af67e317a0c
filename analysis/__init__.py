"""mergesweep analysis: turns sweep archives into the studies' tables and figures.

`python3 -m analysis report ARCHIVE --out DIR` (also `mergesweep report`), `export`, `info`,
`sizing`; modules: reader (HDF5 archive -> DataFrames, committed rows only), stats (the studies'
statistics, pure functions of DataFrames), figures, report, export, sizing. Guide: docs/analysis.md.
"""
