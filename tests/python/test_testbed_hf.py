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
