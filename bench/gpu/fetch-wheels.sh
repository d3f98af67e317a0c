#!/usr/bin/env bash
# Downloads lm-eval 0.4.13 and the Python packages it imports for a local task that the GPU image
# may lack, as wheels for the image's Python 3.12 (x86-64), into bench/gpu/wheels/ (ignored by
# git; carried to the GPU machine with the tree). Run it where PyPI is reachable. check.sh B
# installs from there without network, and only what the image lacks.
#
# What lm-eval imports on `lm_eval --model hf --tasks LOCAL --include_path DIR` (traced with
# python -X importtime, lm-eval 0.4.13): datasets (with dill, multiprocess, xxhash, pyarrow),
# sacrebleu (portalocker, tabulate, colorama, lxml), pytablewriter (DataProperty, mbstrdecoder,
# pathvalidate, tabledata, tcolorpy, typepy, chardet), plus what transformers and accelerate
# need. Not imported, though lm-eval's metadata lists them: evaluate, rouge-score, nltk,
# scikit-learn, sqlitedict, word2number, more_itertools; they are left out and the wheels are
# installed with --no-deps.
# Not carried: pyarrow (its wheel alone is 55 MB, over the 64 MiB a device call carries with the
# sources and the .debs), lxml (5 MB) and the image's own torch, transformers, accelerate,
# huggingface_hub, pandas, numpy, jinja2, pyyaml, tqdm: the lent GPU image has them all (its
# package list in the device notes, read 2026-11-17), and check.sh fails naming any missing one.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${WHEELS_DIR:-$HERE/wheels}"
PY="${PYTHON:-python3}"
PY_VERSION="${PY_VERSION:-3.12}"  # the GPU image's (another only to try the install elsewhere)
# Versions that run together with lm-eval 0.4.13, transformers 5.x and torch 2.11 (the reference
# venv's). datasets 5.2 names pyarrow >= 24 but does not check it at import.
WANTED=(lm_eval==0.4.13 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0
        sacrebleu==2.6.0 portalocker==4.4.2 tabulate==0.10.0 colorama==0.4.6
        pytablewriter==1.2.1 DataProperty==1.1.1 mbstrdecoder==1.1.5 pathvalidate==3.3.1 tabledata==1.3.5
        tcolorpy==0.1.7 typepy==1.3.5 chardet==6.0.0.post1)
rm -rf "$OUT"; mkdir -p "$OUT"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$OUT" "${WANTED[@]}"
printf '%s\n' "${WANTED[@]}" >"$OUT/wanted.txt"
ls -l "$OUT"
echo "total: $(du -sb "$OUT" | cut -f1) bytes in $OUT"
