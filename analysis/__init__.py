"""mergesweep analysis: turns sweep archives into the studies' tables and figures.

The archive reader and report arrive with the sweep engine; this package is importable now so
that `python3 -m pytest analysis` and the project's interpreter set-up are exercised from day one.
"""
