#!/usr/bin/env python3
"""Bad command lines of `mergesweep testbed` (cases-testbed.json; schema in make_bad_inputs.py).
Every case fails before any training, and leaves no output folder behind. Stdlib only."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    out = "{tmp}/tb"
    cases = []

    def case(name, args, expect, exit_code=1, absent=(out,)):
        cases.append({"name": name, "args": args, "exit": exit_code, "expect": expect, "absent": list(absent)})

    case("testbed_no_out", "testbed --preset tiny", ["--out"], exit_code=2)
    case("testbed_unknown_preset", f"testbed --out {out} --preset huge", ["--preset", "unknown preset 'huge'"])
    case("testbed_bad_dtype", f"testbed --out {out} --preset tiny --dtype float16", ["dtype", "'float16'"])
    case("testbed_negative_threads", f"testbed --out {out} --preset tiny --threads -1", ["--threads", ">= 0"])
    case("testbed_out_exists", "testbed --out inputs --preset tiny", ["inputs", "already exists"], absent=())
    case("testbed_bad_seed", f"testbed --out {out} --seed abc", ["--seed"], exit_code=2)
    with open(os.path.join(HERE, "cases-testbed.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
