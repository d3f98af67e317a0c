"""The testbed's folders as Hugging Face sees them (preset tiny, trained by the CLI):
tokenizer.json loads in `tokenizers` and encodes the task texts to the ids of the task packs;
transformers loads every model and, scoring the task packs with its own forward, reaches the
accuracies that testbed.json records from mergesweep's forward. Skipped without the packages
(run with an interpreter that has them, e.g. /tmp/mk2/bin/python)."""
import json
import subprocess

import pytest

tokenizers = pytest.importorskip("tokenizers")
h5py = pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def family(cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("tb") / "tb"
    subprocess.run([cli, "testbed", "--out", str(out), "--preset", "tiny", "--seed", "5", "--quiet"], check=True)
    return out


def read_pack(path):
    with h5py.File(path, "r") as f:
        d = {k: f[k][()] for k in f.keys()}
    items = []
    for i in range(len(d["gold"])):
        ctx = d["context_tokens"][d["context_offsets"][i]:d["context_offsets"][i + 1]].tolist()
        conts = []
        for c in range(d["choice_offsets"][i], d["choice_offsets"][i + 1]):
            conts.append(d["continuation_tokens"][d["continuation_offsets"][c]:d["continuation_offsets"][c + 1]].tolist())
        items.append((ctx, conts, int(d["gold"][i])))
    return items


def test_tokenizer_json_loads_and_round_trips(family):
    tok = tokenizers.Tokenizer.from_file(str(family / "base" / "tokenizer.json"))
    vocab = tok.get_vocab()
    text = "find:a3 c7 b1 d9?c= 7"
    ids = tok.encode(text).ids
    assert ids == [vocab[ch] for ch in text]
    assert tok.decode(ids) == text
    # Every task pack's context + continuation decodes to text that encodes back to the same ids,
    # and encoding the joined string splits exactly at the context (lm-eval's context/continuation split).
    for pack in sorted((family / "tasks").glob("*.h5")):
        for ctx, conts, _ in read_pack(pack):
            for cont in conts:
                whole = tok.decode(ctx + cont)
                assert tok.encode(whole).ids == ctx + cont, (pack.name, whole)
                assert tok.decode(cont).startswith(" ")


def test_transformers_scores_match_testbed_json(family):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    recorded = json.loads((family / "testbed.json").read_text())["accuracy"]
    packs = {p.stem: read_pack(p) for p in sorted((family / "tasks").glob("*.h5"))}
    fast = transformers.PreTrainedTokenizerFast.from_pretrained(str(family / "base"))
    assert fast("copy:ab=").input_ids == [fast.convert_tokens_to_ids(c) for c in "copy:ab="]  # no BOS added
    for name, row in recorded.items():
        model = transformers.AutoModelForCausalLM.from_pretrained(str(family / name), dtype=torch.float32)
        model.eval()
        for fam, items in packs.items():
            correct = 0
            for ctx, conts, gold in items:
                scores = []
                for cont in conts:
                    ids = torch.tensor([ctx + cont[:-1]])
                    with torch.no_grad():
                        logp = torch.log_softmax(model(ids).logits[0].double(), -1)
                    scores.append(sum(logp[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont)))
                correct += int(max(range(len(scores)), key=lambda c: (scores[c], -c)) == gold)
            assert correct / len(items) == pytest.approx(row[fam], abs=1e-12), (name, fam)


def expected_answer(prompt):
    """The answer a generation item asks for, worked out from its prompt ('reverse:abc=', 'digitsum:39=')."""
    kind, arg = prompt[:-1].split(":", 1)
    return arg[::-1] if kind == "reverse" else str(sum(int(c) for c in arg))


def test_transformers_greedy_generation_matches_testbed_json(family):
    """HF greedy generate() on every generation pack reaches the exact match that testbed.json
    records from the testbed's own decoder, and the pack's byte table decodes what it generates."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    recorded = json.loads((family / "testbed.json").read_text())["exact_match"]
    tok = tokenizers.Tokenizer.from_file(str(family / "base" / "tokenizer.json"))
    packs = sorted((family / "generate").glob("*.h5"))
    assert len(packs) >= 2
    for pack in packs:
        with h5py.File(pack, "r") as f:
            assert f.attrs["output_type"] == "generate_until"
            max_gen = int(f.attrs["max_gen_toks"])
            stops = f["stop_token_ids"][()].tolist()
            o, t = f["context_offsets"][()], f["context_tokens"][()]
            prompts = [t[o[i]:o[i + 1]].tolist() for i in range(len(o) - 1)]
            tb, to = f["token_bytes"][()], f["token_bytes_offsets"][()]
            token_bytes = [bytes(tb[to[i]:to[i + 1]]) for i in range(len(to) - 1)]
        assert token_bytes == [b"" if i < 4 else tok.id_to_token(i).encode() for i in range(tok.get_vocab_size())]
        for name, row in recorded.items():
            model = transformers.AutoModelForCausalLM.from_pretrained(str(family / name), dtype=torch.float32)
            model.eval()
            correct = 0
            for ctx in prompts:
                with torch.no_grad():
                    out = model.generate(torch.tensor([ctx]), max_new_tokens=max_gen, do_sample=False,
                                         eos_token_id=stops, pad_token_id=0)
                gen = out[0, len(ctx):].tolist()
                gen = gen[:next((k for k, g in enumerate(gen) if g in stops), len(gen))]
                text = b"".join(token_bytes[g] for g in gen).decode()
                correct += int(text == " " + expected_answer(tok.decode(ctx)))
            assert correct / len(prompts) == pytest.approx(row[pack.stem], abs=1e-12), (name, pack.stem)
