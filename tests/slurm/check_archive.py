"""Checks a finished sweep archive against its spec: every planned config exactly once
(count computed from the spec, independently of the engine's planner), each with a result for
every task pack. Reads committed rows with the analysis package's reader.
usage: check_archive.py ARCHIVE SPEC
"""
import glob
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import yaml  # noqa: E402

from analysis.reader import read_archive  # noqa: E402


def planned(spec_path):
    spec = yaml.safe_load(open(spec_path))
    here = os.path.dirname(os.path.abspath(spec_path))
    cks = spec["checkpoints"]
    cks = cks if isinstance(cks, list) else [cks]
    N = sum(len(glob.glob(os.path.join(here, c))) for c in cks)
    total = 1 + N
    for e in spec["methods"]:
        grid = 1
        for k, v in e.items():
            if k not in ("method", "sizes") and isinstance(v, list):
                grid *= len(v)
        sizes = e.get("sizes", spec["subsets"]["sizes"])
        total += grid * sum(min(spec["subsets"].get("samples", 1), math.comb(N, n)) for n in sizes)
    tasks = sum(len(glob.glob(os.path.join(here, t))) for t in spec.get("eval", {}).get("tasks", []))
    return total, tasks


def main():
    archive, spec = sys.argv[1], sys.argv[2]
    want, ntasks = planned(spec)
    a = read_archive(archive)
    print(a.summary())
    ids = a.configs["id"]
    dup = ids[ids.duplicated()]
    if len(dup):
        print(f"check_archive: {len(dup)} duplicated config ids, e.g. {int(dup.iloc[0]):016x}")
        return 1
    if len(ids) != want:
        print(f"check_archive: {len(ids)} configs, the spec plans {want}")
        return 1
    per = a.results.groupby("config_id")["task"].nunique()
    short = [i for i in ids if per.get(i, 0) != ntasks]
    if short:
        print(f"check_archive: {len(short)} configs without a result for each of the {ntasks} tasks")
        return 1
    print(f"check_archive: ok, {want} configs exactly once, {ntasks} tasks each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
