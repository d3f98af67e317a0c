#!/usr/bin/env python3
"""Bad inputs for `mergesweep report` (which runs python3 -m analysis report):
tests/bad-inputs/inputs/report/ and cases-report.json (schema of cases.json; test_cli runs them).
Needs h5py (run with the project's interpreter, .venv/bin/python of the checkout).
  not_hdf5.h5      plain text
  plain_hdf5.h5    an HDF5 file without the archive's root attributes
  wrong_version.h5 format_version 99
Nothing may be written for a bad input: the report folder must not exist afterwards.
"""
import json
import os
import shutil

import h5py

HERE = os.path.dirname(os.path.abspath(__file__))
IN = os.path.join(HERE, "inputs", "report")
CASES = []


def case(name, args, expect, exit_code=1, absent=()):
    CASES.append({"name": name, "args": args, "exit": exit_code, "expect": expect, "absent": list(absent)})


def main():
    shutil.rmtree(IN, ignore_errors=True)
    os.makedirs(IN)
    with open(os.path.join(IN, "not_hdf5.h5"), "w") as f:
        f.write("not an archive\n")
    with h5py.File(os.path.join(IN, "plain_hdf5.h5"), "w") as f:
        f.create_dataset("x", data=[1, 2, 3])
    with h5py.File(os.path.join(IN, "wrong_version.h5"), "w") as f:
        f.attrs["format_version"] = 99
        f.create_group("commits")
    r = "inputs/report/"
    out = "{tmp}/report"
    case("report_no_out", f"report {r}not_hdf5.h5", ["--out"], exit_code=2)
    case("report_missing_archive", f"report {r}missing.h5 --out {out}", [f"{r}missing.h5", "no such file"],
         absent=[out])
    case("report_not_hdf5", f"report {r}not_hdf5.h5 --out {out}", [f"{r}not_hdf5.h5", "cannot open as an HDF5 file"],
         absent=[out])
    case("report_not_an_archive", f"report {r}plain_hdf5.h5 --out {out}",
         [f"{r}plain_hdf5.h5", "format_version", "not a mergesweep archive"], absent=[out])
    case("report_wrong_version", f"report {r}wrong_version.h5 --out {out}",
         [f"{r}wrong_version.h5", "format version 99 is not supported"], absent=[out])
    with open(os.path.join(HERE, "cases-report.json"), "w") as f:
        json.dump({"cases": CASES}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
