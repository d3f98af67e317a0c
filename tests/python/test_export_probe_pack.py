"""analysis/export_probe_pack.py on the committed toy probe (tests/fixtures/probe_data, made by
its make_probe_data.py) with the byte-level BPE fixture tokenizer of tests/fixtures/lmeval/model
(a BOS post-processor as Llama's, 64 positions): the pack's ids are the tokenizer's own for each
stripped sentence, BOS first and truncated to 64; labels, splits and names as documented; the
three layouts give the same pack; the engine reads the pack and probes the fixture model with it;
bad datasets fail with a message naming the file, the row and the column. The tokenizing parts
need `tokenizers` (scripts/env.sh installs it) or transformers and skip without both."""
import csv
import importlib.util
import json
import pathlib
import subprocess
import sys

import h5py
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "analysis"))
import export_probe_pack as epp  # noqa: E402

DATA = ROOT / "tests" / "fixtures" / "probe_data"
MODEL = ROOT / "tests" / "fixtures" / "lmeval" / "model"
HAVE_TOKENIZER = any(importlib.util.find_spec(m) is not None for m in ("tokenizers", "transformers"))
needs_tokenizer = pytest.mark.skipif(not HAVE_TOKENIZER, reason="needs tokenizers or transformers")


def export(tmp_path, *args, name="pack.h5"):
    out = tmp_path / name
    rc = epp.main([*map(str, args), "--out", str(out)])
    assert rc == 0
    return out


def read(path):
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        tokens, offsets = f["tokens"][()], f["offsets"][()]
        sentences = [tokens[offsets[i]:offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]
        return attrs, sentences, f["labels"][()].tolist(), f["split"][()].tolist(), list(f["label_names"].asstr()[()])


def fixture_rows():
    return [json.loads(line) for line in (DATA / "number.jsonl").read_text().splitlines()]


@needs_tokenizer
def test_jsonl_pack_holds_the_tokenizers_ids_labels_and_splits(tmp_path):
    from tokenizers import Tokenizer

    attrs, sentences, labels, split, names = read(export(tmp_path, DATA / "number.jsonl", "--tokenizer", MODEL))
    assert attrs["format"] == "mergesweep-probe-pack" and attrs["format_version"] == 1
    assert attrs["name"] == "number" and attrs["vocab_size"] == 320
    assert names == ["plural", "singular"]  # sorted label names -> ids 0, 1
    rows = fixture_rows()
    assert len(sentences) == len(rows) == 37
    ref = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    bos = ref.token_to_id("<s>")
    for row, ids, label, s in zip(rows, sentences, labels, split):
        want = ref.encode(row["sentence"].strip()).ids
        assert ids[0] == bos
        assert ids == want[:64], row["sentence"]
        assert names[label] == row["label"]
        assert s == {"train": 0, "validation": 1, "test": 2}[row["split"]]
    assert max(len(ids) for ids in sentences) == 64  # the long sentence, truncated to the model's positions
    assert len(ref.encode(rows[-1]["sentence"]).ids) > 64
    # No special tokens: the same sentences without BOS.
    _, plain, _, _, _ = read(export(tmp_path, DATA / "number.jsonl", "--tokenizer", MODEL, "--no-special-tokens",
                                    "--max-length", "1000", name="plain.h5"))
    assert [ids[1:] for ids in sentences[:-1]] == plain[:-1]


@needs_tokenizer
def test_csv_with_renamed_columns_and_holmes_folder_give_the_same_pack(tmp_path):
    a = read(export(tmp_path, DATA / "number.jsonl", "--tokenizer", MODEL, name="a.h5"))
    b = read(export(tmp_path, DATA / "number.csv", "--tokenizer", MODEL, "--sentence-column", "text",
                    "--label-column", "cls", "--split-column", "fold", name="b.h5"))
    assert a[1:] == b[1:]
    h_attrs, h_sentences, h_labels, h_split, h_names = read(
        export(tmp_path, DATA / "holmes" / "number", "--tokenizer", MODEL, name="h.h5"))
    assert h_attrs["name"] == "toy_number"  # probe_name of config-none.yaml
    assert h_names == ["0", "1"]  # Holmes's integer labels keep their ids
    # Holmes rows are read in id order: the fixture's ids are the JSONL's line numbers (0-based).
    assert h_sentences == a[1] and h_split == a[3]
    assert [a[4][l] for l in a[2]] == [["singular", "plural"][l] for l in h_labels]


@needs_tokenizer
def test_engine_probes_the_fixture_model_with_the_pack(tmp_path, cli):
    pack = export(tmp_path, DATA / "number.jsonl", "--tokenizer", MODEL)
    out = tmp_path / "eval.json"
    subprocess.run([cli, "eval", str(MODEL), "--probes", str(pack), "--layers", "last", "--seeds", "2",
                    "--json", str(out), "-q"], check=True, capture_output=True)
    probe = json.loads(out.read_text())["probes"]["number"]
    assert probe["label_names"] == ["plural", "singular"] and probe["n"] == 37
    (layer,) = probe["layers"].values()
    assert len(layer["macro_f1"]) == 2 and all(0.0 <= f <= 1.0 for f in layer["macro_f1"])


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def failure(tmp_path, capsys, *args):
    rc = epp.main([*map(str, args), "--tokenizer", str(MODEL), "--out", str(tmp_path / "bad.h5")])
    assert rc == 1
    assert not (tmp_path / "bad.h5").exists()
    return capsys.readouterr().err


def test_bad_datasets_fail_naming_file_row_and_column(tmp_path, capsys):
    rows = fixture_rows()
    err = failure(tmp_path, capsys, write_jsonl(tmp_path / "nolabel.jsonl", [{"sentence": "a", "split": "train"}]))
    assert "nolabel.jsonl" in err and "line 1" in err and "missing column 'label'" in err
    err = failure(tmp_path, capsys, DATA / "number.csv")  # default column names are not there
    assert "number.csv" in err and "missing column 'sentence'" in err
    bad = [dict(r) for r in rows]
    bad[3]["split"] = "holdout"
    err = failure(tmp_path, capsys, write_jsonl(tmp_path / "split.jsonl", bad))
    assert "line 4" in err and "'split'" in err and "unknown split 'holdout'" in err
    one = [dict(r, label="singular") for r in rows]
    err = failure(tmp_path, capsys, write_jsonl(tmp_path / "one.jsonl", one))
    assert "at least 2 classes, found 1" in err
    nodev = [r for r in rows if r["split"] != "validation"]
    err = failure(tmp_path, capsys, write_jsonl(tmp_path / "nodev.jsonl", nodev))
    assert "no dev rows" in err
    blank = [dict(r) for r in rows]
    blank[0]["sentence"] = "   "
    err = failure(tmp_path, capsys, write_jsonl(tmp_path / "blank.jsonl", blank))
    assert "line 1" in err and "empty sentence" in err
    with open(DATA / "holmes" / "number" / "folds.csv", encoding="utf-8", newline="") as f:
        holmes = list(csv.reader(f))
    pair = tmp_path / "pair" / "folds.csv"
    pair.parent.mkdir()
    holmes[2][1] = repr(["first sentence.", "second sentence."])
    with open(pair, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(holmes)
    err = failure(tmp_path, capsys, pair.parent)
    assert "folds.csv" in err and "row 2" in err and "expected one sentence" in err
    (pair.parent / "config.yaml").write_text("probe_name: p\nprobe_task_type: SENTENCE_PAIR_BI\n")
    err = failure(tmp_path, capsys, pair.parent)
    assert "SENTENCE_PAIR_BI" in err and "not supported" in err


@needs_tokenizer
def test_a_sentence_that_tokenizes_to_nothing_is_refused(tmp_path, capsys):
    tokenizers = pytest.importorskip("tokenizers")
    # A WordLevel tokenizer whose normalizer deletes '~': "~~~" is text but has no tokens.
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0, "a": 1, "b": 2}, unk_token="[UNK]"))
    tok.normalizer = tokenizers.normalizers.Replace("~", "")
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    folder = tmp_path / "tok"
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]"}')
    rows = [{"sentence": s, "label": l, "split": sp} for s, l, sp in [
        ("a b", "x", "train"), ("b a", "y", "train"), ("a", "x", "dev"), ("~~~", "y", "test")]]
    rc = epp.main([str(write_jsonl(tmp_path / "t.jsonl", rows)), "--tokenizer", str(folder), "--out",
                   str(tmp_path / "t.h5")])
    err = capsys.readouterr().err
    assert rc == 1 and "t.jsonl: line 4" in err and "tokenizes to no tokens" in err
