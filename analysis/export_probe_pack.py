#!/usr/bin/env python3
"""Turn a probing dataset into a mergesweep probe pack (HDF5, docs/formats.md "Probe packs").

A probing dataset is one probe: sentences, a class label each, and a split (train/dev/test).
Accepted inputs (--format auto picks by the path):
  holmes  a Holmes / FlashHolmes probe: its folder (folds.csv or samples.csv, and the config*.yaml
          beside it that names the probe and its type) or the CSV itself. Columns `inputs` (a
          Python list literal holding the one sentence of a SENTENCE probe), `label`, `set-0`
          (the fold's split; --fold picks another); rows in `id` order, as Holmes loads them.
  jsonl   one JSON object per line with the columns below
  csv     a header row with the columns below
Columns (jsonl/csv): sentence, label, split; --sentence-column/--label-column/--split-column
rename them. Splits: train, dev, test (validation is read as dev).

Classes: the sorted unique label names get ids 0, 1, ... (numerically sorted when every name is
an integer, so Holmes's 0..k-1 labels keep their ids; otherwise sorted as strings). The pack's
label_names hold them in id order.

Tokenization is the one Holmes's encoder (sentence-transformers' Transformer module, which the
pipeline study's FlashHolmes probes ran through) applies: the sentence stripped of surrounding
whitespace, then tokenizer(sentence) with the tokenizer's own special tokens (a BOS where its
post-processor adds one, as Llama's; none for Qwen2.5), truncated on the right to the model's
length (min of the tokenizer's model_max_length and config.json's max_position_embeddings, when
known; --max-length sets it). --no-special-tokens leaves special tokens out. The tokenizer is
transformers' AutoTokenizer when transformers is installed, else the `tokenizers` library on the
folder's tokenizer.json (the same ids wherever the tokenizer.json's post-processor is the one
transformers uses; it is for Qwen2.5 and Llama 3).

  python3 analysis/export_probe_pack.py holmes-data/subject_verb_agreement --tokenizer ./model --out sva.h5
  python3 analysis/export_probe_pack.py probe.jsonl --tokenizer ./model --out probe.h5 --name my_probe
Errors name the file, the row (1-based line or data row) and the column.
"""
import argparse
import ast
import csv
import glob
import json
import os
import sys

import numpy as np

SPLIT_IDS = {"train": 0, "dev": 1, "validation": 1, "test": 2}
SPLIT_NAMES = ("train", "dev", "test")


class ExportError(Exception):
    """A bad dataset or argument; main() prints it and exits with status 1."""


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="the probing dataset: a Holmes probe folder or CSV, a JSONL or a CSV file")
    ap.add_argument("--tokenizer", required=True, help="HF tokenizer folder or name (the model's)")
    ap.add_argument("--out", required=True, help="probe pack to write (.h5)")
    ap.add_argument("--name", help="probe name in results (default: Holmes's probe_name, else the file or folder name)")
    ap.add_argument("--format", choices=("auto", "holmes", "jsonl", "csv"), default="auto")
    ap.add_argument("--sentence-column", default="sentence")
    ap.add_argument("--label-column", default="label")
    ap.add_argument("--split-column", default="split")
    ap.add_argument("--fold", type=int, default=0, help="Holmes fold: its split column is set-FOLD (default 0)")
    ap.add_argument("--max-length", type=int, default=None,
                    help="truncate sentences to this many tokens, special tokens included (default: the model's)")
    ap.add_argument("--no-special-tokens", action="store_true", help="no BOS/EOS or other special tokens")
    ap.add_argument("--vocab-size", type=int, default=None,
                    help="ids must be below this (default: len(tokenizer)); use the model's vocab_size if larger")
    return ap.parse_args(argv)


# ---- reading ------------------------------------------------------------------------------------

def detect_format(path):
    if os.path.isdir(path):
        return "holmes"
    ext = os.path.splitext(path)[1].lower()
    if ext in (".jsonl", ".json"):
        return "jsonl"
    if ext == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            header = next(csv.reader(f), [])
        return "holmes" if "inputs" in header and any(h.startswith("set-") for h in header) else "csv"
    raise ExportError(f"{path}: cannot tell the format from the name (.jsonl, .csv or a Holmes folder); use --format")


def require_columns(path, present, wanted):
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ExportError(f"{path}: missing column {', '.join(repr(c) for c in missing)} "
                          f"(found: {', '.join(repr(c) for c in present) or 'none'})")


def read_jsonl(path, cols):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ExportError(f"{path}: line {line_no}: not JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ExportError(f"{path}: line {line_no}: expected a JSON object, found {type(obj).__name__}")
            require_columns(f"{path}: line {line_no}", list(obj), cols)
            rows.append((f"line {line_no}", *(obj[c] for c in cols)))
    return rows


def read_csv(path, cols):
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        require_columns(path, reader.fieldnames or [], cols)
        # Data row n is line n + 1 of the file (after the header) unless a field spans lines.
        return [(f"row {n}", *(r[c] for c in cols)) for n, r in enumerate(reader, 1)]


def holmes_files(path):
    """(csv path, config yaml or None) of a Holmes probe folder or CSV."""
    if os.path.isdir(path):
        csvs = [os.path.join(path, n) for n in ("folds.csv", "samples.csv") if os.path.exists(os.path.join(path, n))]
        if not csvs:
            raise ExportError(f"{path}: a Holmes probe folder holds folds.csv or samples.csv; found neither")
        folder, data = path, csvs[0]
    else:
        folder, data = os.path.dirname(os.path.abspath(path)), path
    configs = sorted(glob.glob(os.path.join(folder, "config*.yaml")))
    return data, (configs[0] if configs else None)


def holmes_config(config_path):
    """Holmes's probe config: its name, after checking the probe reads one sentence per row."""
    if config_path is None:
        return None
    import yaml

    with open(config_path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    kind = str(config.get("probe_task_type", "SENTENCE"))
    if kind != "SENTENCE":
        raise ExportError(f"{config_path}: probe_task_type {kind}: a probe pack holds one sentence per row "
                          "(SENTENCE probes); token, span and pair probes are not supported")
    return config.get("probe_name")


def holmes_sentence(path, where, inputs):
    try:
        value = ast.literal_eval(inputs)
    except (ValueError, SyntaxError):
        raise ExportError(f"{path}: {where}: column 'inputs': not a Python list literal: {inputs[:80]!r}") from None
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    raise ExportError(f"{path}: {where}: column 'inputs': expected one sentence (a SENTENCE probe), "
                      f"found {inputs[:80]!r}")


def read_holmes(path, fold):
    data, config = holmes_files(path)
    name = holmes_config(config)
    split_col = f"set-{fold}"
    with open(data, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        require_columns(data, reader.fieldnames or [], ["inputs", "label", split_col])
        raw = [(n, r) for n, r in enumerate(reader, 1)]
    if raw and "id" in raw[0][1]:  # Holmes loads the frame sorted by id
        def key(item):
            ident = item[1]["id"]
            return (0, int(ident), "") if ident.lstrip("-").isdigit() else (1, 0, ident)
        raw.sort(key=key)
    rows = [(f"row {n}", holmes_sentence(data, f"row {n}", r["inputs"]), r["label"], r[split_col]) for n, r in raw]
    return data, name, rows


def read_rows(args):
    """(source file, default name, rows of (where, sentence, label, split))."""
    fmt = args.format if args.format != "auto" else detect_format(args.data)
    if fmt == "holmes":
        data, name, rows = read_holmes(args.data, args.fold)
        return data, name or os.path.basename(os.path.dirname(os.path.abspath(data))), rows
    cols = [args.sentence_column, args.label_column, args.split_column]
    rows = read_jsonl(args.data, cols) if fmt == "jsonl" else read_csv(args.data, cols)
    return args.data, os.path.splitext(os.path.basename(args.data))[0], rows


# ---- labels, splits, tokens ---------------------------------------------------------------------

def label_names_of(labels):
    """Sorted unique label names: numerically when all are integers, else as strings."""
    names = sorted(set(labels))
    if all(n.lstrip("-").isdigit() for n in names):
        names.sort(key=int)
    return names


def check_rows(path, rows, cols):
    """Sentences, label names per row and split ids, with the dataset-level checks."""
    sentence_col, label_col, split_col = cols
    sentences, labels, splits = [], [], []
    for where, sentence, label, split in rows:
        if not isinstance(sentence, str):
            raise ExportError(f"{path}: {where}: column {sentence_col!r}: expected a string, found {sentence!r}")
        if not sentence.strip():
            raise ExportError(f"{path}: {where}: column {sentence_col!r}: empty sentence")
        if label is None or (isinstance(label, str) and not label.strip()) or isinstance(label, (list, dict)):
            raise ExportError(f"{path}: {where}: column {label_col!r}: expected a label, found {label!r}")
        key = str(split).strip().lower()
        if key not in SPLIT_IDS:
            raise ExportError(f"{path}: {where}: column {split_col!r}: unknown split {split!r} "
                              "(expected train, dev, validation or test)")
        sentences.append(sentence.strip())  # as sentence-transformers strips before tokenizing
        labels.append(str(label).strip())
        splits.append(SPLIT_IDS[key])
    if not rows:
        raise ExportError(f"{path}: no rows")
    names = label_names_of(labels)
    if len(names) < 2:
        raise ExportError(f"{path}: column {label_col!r}: a probe needs at least 2 classes, found {len(names)} "
                          f"({', '.join(repr(n) for n in names)})")
    counts = np.bincount(np.array(splits), minlength=3)
    for s, n in enumerate(counts):
        if n == 0:
            raise ExportError(f"{path}: column {split_col!r}: no {SPLIT_NAMES[s]} rows (a probe trains on train, "
                              "stops early on dev, scores on test)")
    return sentences, labels, splits, names


def model_max_length(folder, tokenizer_limit):
    """sentence-transformers' max_seq_length: min(config max_position_embeddings, model_max_length)."""
    limits = [tokenizer_limit] if tokenizer_limit and tokenizer_limit < 10**9 else []
    config = os.path.join(folder, "config.json") if os.path.isdir(folder) else None
    if config and os.path.exists(config):
        with open(config, encoding="utf-8") as f:
            n = json.load(f).get("max_position_embeddings")
        if isinstance(n, int) and n > 0:
            limits.append(n)
    return min(limits) if limits else None


def load_tokenizer(path, max_length, special):
    """(encode(text) -> ids, vocab size, max length used): transformers when installed, else tokenizers."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        AutoTokenizer = None
    if AutoTokenizer is not None:
        tok = AutoTokenizer.from_pretrained(path)
        limit = max_length or model_max_length(path, getattr(tok, "model_max_length", None))

        def encode(text):
            return tok(text, add_special_tokens=special, truncation=limit is not None, max_length=limit)["input_ids"]

        return encode, len(tok), limit
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ExportError("export_probe_pack needs transformers or tokenizers (pip install tokenizers)") from None
    file = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise ExportError(f"{path}: no tokenizer.json (without transformers, --tokenizer must be a folder "
                          "holding one, or the file)")
    tok = Tokenizer.from_file(file)
    config = os.path.join(os.path.dirname(file), "tokenizer_config.json")
    tokenizer_limit = None
    if os.path.exists(config):
        with open(config, encoding="utf-8") as f:
            tokenizer_limit = json.load(f).get("model_max_length")
    limit = max_length or model_max_length(os.path.dirname(file), tokenizer_limit)
    if limit is not None:  # right truncation that keeps the special tokens, as transformers'
        tok.enable_truncation(max_length=limit, strategy="longest_first", direction="right")

    def encode(text):
        return tok.encode(text, add_special_tokens=special).ids

    return encode, tok.get_vocab_size(with_added_tokens=True), limit


def tokenize(path, sentences, wheres, encode, vocab, sentence_col):
    out = []
    for where, s in zip(wheres, sentences):
        ids = list(encode(s))
        if not ids:
            raise ExportError(f"{path}: {where}: column {sentence_col!r}: {s[:80]!r} tokenizes to no tokens")
        bad = [t for t in ids if not 0 <= t < vocab]
        if bad:
            raise ExportError(f"{path}: {where}: token id {bad[0]} is outside [0, {vocab}) (--vocab-size)")
        out.append(ids)
    return out


# ---- writing ------------------------------------------------------------------------------------

def write_pack(out, attrs, sentences, labels, splits, label_names):
    """Writes under a temporary name in the same folder, then renames (as the C++ writer)."""
    import h5py

    offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in sentences])
    tmp = os.path.join(os.path.dirname(os.path.abspath(out)), "." + os.path.basename(out) + ".tmp")
    with h5py.File(tmp, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        f["tokens"] = np.concatenate([np.asarray(s, dtype=np.int32) for s in sentences])
        f["offsets"] = offsets
        f["labels"] = np.asarray(labels, dtype=np.int32)
        f["split"] = np.asarray(splits, dtype=np.uint8)
        f.create_dataset("label_names", data=np.array(label_names, dtype=object), dtype=h5py.string_dtype("utf-8"))
    os.replace(tmp, out)


def export(args):
    """Reads, checks, tokenizes and writes; returns a one-line summary."""
    path, default_name, rows = read_rows(args)
    fmt_holmes = (args.format if args.format != "auto" else detect_format(args.data)) == "holmes"
    cols = ("inputs", "label", f"set-{args.fold}") if fmt_holmes else (
        args.sentence_column, args.label_column, args.split_column)
    sentences, labels, splits, names = check_rows(path, rows, cols)
    encode, vocab, limit = load_tokenizer(args.tokenizer, args.max_length, not args.no_special_tokens)
    vocab = args.vocab_size or vocab
    token_ids = tokenize(path, sentences, [r[0] for r in rows], encode, vocab, cols[0])
    class_of = {n: i for i, n in enumerate(names)}
    name = args.name or default_name
    attrs = {"format": "mergesweep-probe-pack", "format_version": np.int64(1), "name": name,
             "tokenizer": args.tokenizer, "vocab_size": np.int64(vocab)}
    write_pack(args.out, attrs, token_ids, [class_of[l] for l in labels], splits, names)
    counts = np.bincount(np.array(splits), minlength=3)
    return (f"export_probe_pack: {name}: {len(rows)} sentences (train {counts[0]}, dev {counts[1]}, test {counts[2]}), "
            f"{len(names)} classes, max length {limit or 'none'} -> {args.out}")


def main(argv=None):
    args = parse_args(argv)
    try:
        print(export(args), file=sys.stderr)
    except ExportError as e:
        print(f"export_probe_pack: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
