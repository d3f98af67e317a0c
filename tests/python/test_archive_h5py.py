"""An analyst's view of a sweep archive: h5py + pandas read every table of an archive written by
the C++ writer, following docs/formats.md ("Sweep archive"), and the CSV export reads back.

The archive is made by `mergesweep archive merge` (the C++ Writer) from a small archive written
here with h5py, so the test also checks that the documented layout round-trips. Skips without the
mergesweep binary (MS_BUILD) or h5py."""
import importlib.util
import pathlib
import subprocess

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
pd = pytest.importorskip("pandas")

ROOT = pathlib.Path(__file__).resolve().parents[2]
TABLES_V1 = ["checkpoints", "tasks", "specs", "configs", "results", "model_stats", "probes", "timings"]
GENERATION_TABLES = ["generations", "generation_tokens", "generation_text"]  # format version 2
FAILURE_TABLES = ["failures"]  # format version 3


def load(path):
    """The reader of docs/formats.md, verbatim in spirit: last complete commit, then every column."""
    with h5py.File(path, "r", swmr=True) as f:
        TABLES = [t for t in TABLES_V1 + GENERATION_TABLES + FAILURE_TABLES if "commits/" + t in f]
        seq = f["commits/seq"][:]
        counts = {t: f["commits/" + t][:] for t in TABLES}
        for i in range(len(seq) - 1, -1, -1):
            row = {t: int(counts[t][i]) for t in TABLES if i < len(counts[t])}
            if seq[i] == i + 1 and len(row) == len(TABLES) and all(
                    0 <= row[t] <= min(d.shape[0] for d in f[t].values()) for t in TABLES):
                break
        else:
            raise RuntimeError("no complete commit")
        out = {}
        for t in TABLES:
            cols = f[t].attrs["columns"].split(",")
            out[t] = pd.DataFrame({c: (f[t][c].asstr()[: row[t]] if f[t][c].dtype.kind == "S"
                                       else f[t][c][: row[t]]) for c in cols})
        return dict(f.attrs), out


@pytest.fixture()
def source(tmp_path):
    """A small archive with every table non-empty, written by h5py with the bad-input generator's schema."""
    spec = importlib.util.spec_from_file_location("gen", ROOT / "tests/bad-inputs/make_bad_inputs_archive.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.IN = str(tmp_path)
    big = np.uint64(2**64 - 5)  # config ids use all 64 bits

    def fill(t):
        ids = list(t["configs"]["config_id"])
        t["configs"]["config_id"][0] = big
        t["results"]["config_id"][0] = big
        t["timings"]["config_id"][0] = big
        ids[0] = big
        t["model_stats"] = {"config_id": ids[:2], "l2_from_base": [1.0, 2.0], "cos_mean": [0.1, 0.2],
                            "cos_min": [0.0, 0.1], "cos_max": [0.3, 0.4], "l2_embed": [np.nan, 0.5],
                            "l2_lm_head": [np.nan] * 2, "l2_attn": [0.7, 0.8], "l2_mlp": [0.9, 1.0],
                            "l2_norm": [np.nan] * 2, "l2_other": [np.nan] * 2}
        t["probes"] = {"config_id": ids, "probe": ["pos"] * 3, "layer": [0, 1, 2], "f1_mean": [0.5, 0.6, 0.7],
                       "f1_std": [0.01] * 3, "seeds": [5] * 3}
    gen.archive("src.h5", edit=fill)
    return tmp_path / "src.h5", big


def test_h5py_and_pandas_read_every_table(cli, source, tmp_path):
    src, big = source
    out = tmp_path / "cpp.h5"
    subprocess.run([cli, "archive", "merge", str(src), "--out", str(out)], check=True, capture_output=True)
    attrs, t = load(out)
    # merge writes the current format (5) from the version-1 source: the generation and failure tables are empty.
    assert attrs["format_version"] == 5 and attrs["plan_hash"] == "plan-A"
    assert isinstance(attrs["spec_text"], str)
    assert {k: len(v) for k, v in t.items()} == {"checkpoints": 3, "tasks": 1, "specs": 1, "configs": 3,
                                                 "results": 3, "model_stats": 2, "probes": 3, "timings": 3,
                                                 "generations": 0, "generation_tokens": 0, "generation_text": 0,
                                                 "failures": 0}
    assert t["configs"]["config_id"].dtype == np.uint64
    assert t["configs"]["config_id"].iloc[0] == big
    assert list(t["configs"]["members"]) == ["1,2"] * 3
    assert t["checkpoints"]["sha256"].str.len().eq(64).all()
    tidy = t["results"].merge(t["configs"], on="config_id", suffixes=("", "_config"))
    assert len(tidy) == 3 and set(tidy["method"]) == {"task_arithmetic"}
    stats = t["model_stats"].set_index("config_id")
    assert np.isnan(stats.loc[big, "l2_embed"]) and stats["l2_attn"].tolist() == [0.7, 0.8]
    assert t["probes"]["layer"].tolist() == [0, 1, 2]
    # Same data as the h5py-written source.
    _, s = load(src)
    for name in TABLES_V1:
        if name == "specs":
            continue
        pd.testing.assert_frame_equal(t[name].reset_index(drop=True), s[name].reset_index(drop=True),
                                      check_dtype=False)


def test_csv_export_reads_back_with_pandas(cli, source, tmp_path):
    src, big = source
    subprocess.run([cli, "archive", "export", str(src), "--out", str(tmp_path / "csv")], check=True,
                   capture_output=True)
    res = pd.read_csv(tmp_path / "csv/results.csv", dtype={"config_id": "uint64", "members": str})
    assert len(res) == 3 and res["config_id"].iloc[0] == big
    assert list(res.columns) == ["config_id", "kind", "method", "params", "n", "sample", "members", "member_names",
                                 "task", "metric", "value", "stderr", "items"]
    ck = pd.read_csv(tmp_path / "csv/checkpoints.csv")
    names = dict(zip(ck["model"], ck["name"]))
    assert res["member_names"].iloc[0] == f"{names[1]},{names[2]}"  # members 1,2 by their /checkpoints names
    assert res["params"].iloc[0] == '{"lambda":1.0}'
    ms = pd.read_csv(tmp_path / "csv/model_stats.csv")
    assert ms["l2_embed"].isna().iloc[0] and ms["l2_embed"].iloc[1] == 0.5


GENERATIONS = [  # (config row, item, stop, tokens, response bytes): NUL, invalid UTF-8, empty
    (0, 0, "until", [5, 17, 3], b"The answer is 42"),
    (0, 1, "stop_token", [], b""),
    (1, 0, "length", [9] * 4, b"caf\xc3\xa9 \x00\xff"),
]


@pytest.fixture()
def source_v2(tmp_path):
    """A version-2 archive written by h5py from docs/formats.md ("Format version 2"): the v1 tables
    of the bad-input generator plus /generations and its two flat tables, committed in one commit."""
    spec = importlib.util.spec_from_file_location("gen", ROOT / "tests/bad-inputs/make_bad_inputs_archive.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.IN = str(tmp_path)
    gen.archive("src2.h5", version=2)
    path = tmp_path / "src2.h5"
    with h5py.File(path, "a") as f:
        ids = f["configs/config_id"][:]
        tokens = [t for g in GENERATIONS for t in g[3]]
        text = b"".join(g[4] for g in GENERATIONS)
        tb = np.cumsum([0] + [len(g[3]) for g in GENERATIONS])[:-1]
        xb = np.cumsum([0] + [len(g[4]) for g in GENERATIONS])[:-1]
        cols = {"config_id": (np.array([ids[g[0]] for g in GENERATIONS], "<u8")),
                "task": np.array([b"gsm8k"] * 3, "S128"), "item": np.array([g[1] for g in GENERATIONS], "<i8"),
                "stop": np.array([g[2].encode() for g in GENERATIONS], "S16"), "tokens_begin": tb.astype("<i8"),
                "n_tokens": np.array([len(g[3]) for g in GENERATIONS], "<i4"), "text_begin": xb.astype("<i8"),
                "text_bytes": np.array([len(g[4]) for g in GENERATIONS], "<i4")}
        for name, data in (("generations", cols), ("generation_tokens", {"token": np.array(tokens, "<i4")}),
                           ("generation_text", {"byte": np.frombuffer(text, "u1")})):
            g = f.create_group(name)
            g.attrs["columns"] = ",".join(data)
            for c, v in data.items():
                g.create_dataset(c, data=v, maxshape=(None,), chunks=(64,))
            f["commits"].create_dataset(name, data=np.array([len(next(iter(data.values())))], "<i8"),
                                        maxshape=(None,), chunks=(64,))
        f["commits"].attrs["columns"] = f["commits"].attrs["columns"] + "," + ",".join(GENERATION_TABLES)
    return path


def test_generations_round_trip_through_the_cpp_writer(cli, source_v2, tmp_path):
    out = tmp_path / "cpp2.h5"
    subprocess.run([cli, "archive", "merge", str(source_v2), "--out", str(out)], check=True, capture_output=True)
    attrs, t = load(out)
    assert attrs["format_version"] == 5
    g, tok, txt = t["generations"], t["generation_tokens"]["token"].to_numpy(), t["generation_text"]["byte"]
    assert len(g) == 3
    text = txt.to_numpy().tobytes()
    for row, want in zip(g.itertuples(), GENERATIONS):
        assert list(tok[row.tokens_begin: row.tokens_begin + row.n_tokens]) == want[3]
        assert text[row.text_begin: row.text_begin + row.text_bytes] == want[4]
        assert (row.item, row.stop) == (want[1], want[2])
    # analysis.reader: the same, with the runs cut out, and the configs lacking scores.
    import sys
    sys.path.insert(0, str(ROOT))
    from analysis.reader import read_archive
    a = read_archive(out)
    assert [bytes(b) for b in a.generations["text"]] == [w[4] for w in GENERATIONS]
    assert [list(x) for x in a.generations["tokens"]] == [w[3] for w in GENERATIONS]
    assert a.generations["response"].iloc[2] == "café \x00\ufffd"
    u = a.unscored()
    assert u.to_dict("records") == [{"task": "gsm8k", "configs": 2, "unscored": 2}]
    assert "python3 -m analysis score" in a.summary()
    verify = subprocess.run([cli, "archive", "verify", str(out)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    info = subprocess.run([cli, "archive", "summary", str(out)], capture_output=True, text=True, check=True).stdout
    assert "gsm8k" in info and "2 unscored" in info and f"python3 -m analysis score {out}" in info


def test_generations_export_to_csv_with_decoded_text_and_exact_bytes(cli, source_v2, tmp_path):
    subprocess.run([cli, "archive", "export", str(source_v2), "--out", str(tmp_path / "csv")], check=True,
                   capture_output=True)
    g = pd.read_csv(tmp_path / "csv/generations.csv", dtype={"config_id": "uint64", "tokens": str, "text": str,
                                                             "text_hex": str}, keep_default_na=False)
    assert len(g) == 3
    assert g["text"].tolist() == ["The answer is 42", "", "café \ufffd\ufffd"]
    assert [bytes.fromhex(h) for h in g["text_hex"]] == [w[4] for w in GENERATIONS]
    assert g["tokens"].tolist() == ["5 17 3", "", "9 9 9 9"]
    assert g["stop"].tolist() == ["until", "stop_token", "length"]
