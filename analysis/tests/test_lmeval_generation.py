"""generate_until packs written by analysis/export_lmeval_task.py (tests/fixtures/lmeval_gen_*),
checked against what lm-eval 0.4.13 itself used (expected.json: its contexts, targets), and the
exporter's refusals (these need lm-eval: run with MS_LMEVAL_PYTHON, skipped without)."""
import json
import os
import shutil
import subprocess

import h5py
import pytest

from analysis.lmeval_generation import decode_with_table
from analysis.tests.test_score import FIX, ROOT, include_dir, lm_eval_hf_python


def read_pack(path):
    with h5py.File(path, "r") as f:
        a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        toks, offs = f["context_tokens"][:], f["context_offsets"][:]
        tb, to = bytes(f["token_bytes"][:]), f["token_bytes_offsets"][:]
        p = {"attrs": a, "prompts": [toks[offs[i]:offs[i + 1]].tolist() for i in range(len(offs) - 1)],
             "table": [tb[to[i]:to[i + 1]] for i in range(len(to) - 1)],
             "is_byte": f["token_is_byte"][:].tolist() if "token_is_byte" in f else [0] * (len(to) - 1),
             "until": list(f["until"].asstr()[:]), "stops": f["stop_token_ids"][:].tolist(),
             "target": list(f["target"].asstr()[:]), "doc_id": f["doc_id"][:].tolist(),
             "choice_offsets": f["choice_offsets"][:].tolist()}
    return p


@pytest.mark.parametrize("kind", ["bpe", "spm"])
@pytest.mark.parametrize("task,max_gen,until", [("ms_gen_arith", 32, ["Question:", "</s>", "<|im_end|>"]),
                                                ("ms_gen_reverse", 6, ["\n", "</s>"])])
def test_pack_holds_lm_evals_prompts_and_generation_settings(kind, task, max_gen, until):
    p = read_pack(FIX / f"lmeval_gen_{kind}" / f"{task}.h5")
    with open(FIX / f"lmeval_gen_{kind}" / "expected.json", encoding="utf-8") as f:
        items = json.load(f)["tasks"][task]["items"]
    a = p["attrs"]
    assert (a["format_version"], a["output_type"], a["max_gen_toks"]) == (2, "generate_until", max_gen)
    assert a["strip_leading_space"] == (1 if kind == "spm" else 0)
    assert p["until"] == until                      # the task's, then the EOS string lm-eval appends
    assert p["stops"] == [1 if kind == "bpe" else 2]  # </s>, the model's generation_config eos
    assert p["doc_id"] == [it["doc_id"] for it in items]
    assert p["target"] == [it["target"] for it in items]
    assert p["choice_offsets"] == [0] * (len(items) + 1)
    assert any(p["is_byte"]) == (kind == "spm")
    for prompt, it in zip(p["prompts"], items):
        # the untruncated prompt ids decode (byte table, BOS skipped) to lm-eval's own context
        assert decode_with_table(prompt, p["table"], p["is_byte"], a["strip_leading_space"]) == it["context"]
    if task == "ms_gen_arith":
        assert max(len(x) for x in p["prompts"]) > 128 - max_gen  # some prompts are left-truncated by lm-eval


def test_byte_fallback_runs_decode_as_tokenizers_does():
    table = [b"", b" a", b"\xc3", b"\xa9", b"\xe2", b"\x82", b"\xac", b"b"]
    is_byte = [0, 0, 1, 1, 1, 1, 1, 0]
    assert decode_with_table([1, 2, 3], table, is_byte, True) == "a\u00e9"
    assert decode_with_table([4, 5, 6, 7], table, is_byte, False) == "\u20acb"
    # an invalid run: one U+FFFD per byte token (ByteFallback), not per maximal subpart
    assert decode_with_table([4, 5, 7], table, is_byte, False) == "\ufffd\ufffdb"
    # special tokens (no bytes) do not break a run
    assert decode_with_table([4, 0, 5, 0, 6], table, is_byte, False) == "\u20ac"
    # byte-level: the concatenation is decoded with one U+FFFD per maximal invalid subpart
    assert decode_with_table([4, 5, 7], table, [0] * 8, False) == "\ufffdb"


def export(exe, tmp_path, task_yaml, tokenizer):
    out = tmp_path / "out.h5"
    r = subprocess.run([exe, "analysis/export_lmeval_task.py", "--task", str(task_yaml), "--tokenizer",
                        str(tokenizer), "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    return r, out


def variant(tmp_path, edit):
    d = include_dir(tmp_path)
    y = d / "ms_gen_arith.yaml"
    y.write_text(edit(y.read_text()))
    return y


@pytest.mark.parametrize("edit,msg", [
    (lambda t: t.replace("do_sample: false", "do_sample: true"), "mergesweep generates greedily only"),
    (lambda t: t.replace("temperature: 0.0", "temperature: 0.7").replace("  do_sample: false\n", ""),
     "mergesweep generates greedily only"),
    (lambda t: t.replace("max_gen_toks: 32", "max_gen_toks: 0"), "max_gen_toks 0: must be > 0"),
    (lambda t: t.replace('    - "<|im_end|>"', '    - ""'), "holds an empty or non-string stop sequence"),
    (lambda t: t.replace("max_gen_toks: 32", "max_gen_toks: 32\n  num_beams: 4"), "['num_beams'] change greedy"),
])
def test_exporter_refuses_what_greedy_decoding_cannot_reproduce(tmp_path, edit, msg):
    exe = lm_eval_hf_python()
    if exe is None:
        pytest.skip("no interpreter with lm-eval's HF backend (set MS_LMEVAL_HF_PYTHON)")
    r, out = export(exe, tmp_path, variant(tmp_path, edit), FIX / "lmeval_gen_bpe" / "model")
    assert r.returncode != 0 and msg in r.stderr, r.stderr[-2000:]
    assert not out.exists()


def test_exporter_refuses_a_tokenizer_whose_decode_the_byte_table_misses(tmp_path):
    """clean_up_tokenization_spaces (forced on for BPE) rewrites " ." as "." after decoding: the
    self-check finds a sequence where decode and the byte table differ, and names it."""
    exe = lm_eval_hf_python()
    if exe is None:
        pytest.skip("no interpreter with lm-eval's HF backend (set MS_LMEVAL_HF_PYTHON)")
    tok = tmp_path / "tok"
    shutil.copytree(FIX / "lmeval_gen_bpe" / "model", tok)
    cfg = json.loads((tok / "tokenizer_config.json").read_text())
    cfg.update(clean_up_tokenization_spaces=True,
               clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output=True)
    (tok / "tokenizer_config.json").write_text(json.dumps(cfg))
    r, out = export(exe, tmp_path, variant(tmp_path, lambda t: t), tok)
    assert r.returncode != 0, r.stderr[-2000:]
    assert f"tokenizer {tok}: its decode differs from the byte table" in r.stderr
    assert "check clean_up_tokenization_spaces" in r.stderr and not out.exists()


def test_exporter_accepts_the_fixture_task_again(tmp_path):
    """Re-exporting gives the committed pack's datasets (the exporter is deterministic)."""
    exe = lm_eval_hf_python()
    if exe is None:
        pytest.skip("no interpreter with lm-eval's HF backend (set MS_LMEVAL_HF_PYTHON)")
    r, out = export(exe, tmp_path, include_dir(tmp_path) / "ms_gen_reverse.yaml",
                    os.path.relpath(FIX / "lmeval_gen_spm" / "model", ROOT))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "byte table checked on" in r.stderr
    a, b = read_pack(out), read_pack(FIX / "lmeval_gen_spm" / "ms_gen_reverse.h5")
    assert a == b


@pytest.mark.parametrize("kind", ["bpe", "spm"])
@pytest.mark.parametrize("task", ["ms_gen_arith", "ms_gen_reverse"])
def test_byte_table_turns_generated_ids_into_lm_evals_responses(kind, task):
    """gen_ids: transformers' greedy ids for the pack's prompts (the fixture checked they are
    lm-eval's generations); the byte table and the `until` cut must give lm-eval's response."""
    p = read_pack(FIX / f"lmeval_gen_{kind}" / f"{task}.h5")
    with open(FIX / f"lmeval_gen_{kind}" / "expected.json", encoding="utf-8") as f:
        items = json.load(f)["tasks"][task]["items"]
    for it in items:
        text = decode_with_table(it["gen_ids"], p["table"], p["is_byte"], p["attrs"]["strip_leading_space"])
        for u in p["until"]:
            text = text.split(u)[0]  # lm-eval's postprocess_generated_text
        assert text == it["resp"], it["doc_id"]


@pytest.mark.parametrize("kind", ["bpe", "spm"])
def test_fixtures_cover_until_and_length_stops(kind):
    with open(FIX / f"lmeval_gen_{kind}" / "expected.json", encoding="utf-8") as f:
        tasks = json.load(f)["tasks"]
    rev = [len(it["gen_ids"]) for it in tasks["ms_gen_reverse"]["items"]]
    assert 0 < sum(n == 6 for n in rev) < len(rev)  # some reversals stop on length, others on "\n"
    assert all(len(it["gen_ids"]) < 32 for it in tasks["ms_gen_arith"]["items"])  # "Question:" stops
