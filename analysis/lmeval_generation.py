"""generate_until task packs (docs/formats.md, "Task packs, format_version 2"), called by
export_lmeval_task.py for tasks whose output_type is generate_until.

What the engine needs to generate exactly as lm-eval's HF backend (lm_eval/models/huggingface.py,
HFLM.generate_until) does, derived by lm-eval's own code where lm-eval has it:
- prompts: the instances' contexts encoded by HFLM.tok_batch_encode, untruncated (the engine
  left-truncates to max_length - max_gen_toks for its model);
- max_gen_toks and until: normalize_gen_kwargs + handle_stop_sequences on the task's
  generation_kwargs, the EOS string appended as lm-eval appends it; greedy only;
- stop_token_ids: what transformers' generate stops on (the model's generation_config eos);
- the byte table: each id's bytes as the HF tokenizer decodes it (skip_special_tokens=True), so
  the engine can check `until` on decoded text. The table is checked against tokenizer.decode
  on many sequences before anything is written (self_check).

Needs lm-eval, transformers and torch (the exporter's venv, not the project's interpreter).
"""
import json
import os
import random
import re
import sys

import h5py
import numpy as np

# Keys of normalized generation kwargs that greedy decoding honours or ignores (top_p/top_k only
# act when sampling). Anything else (num_beams, repetition_penalty, ...) changes the output.
GREEDY_KEYS = {"do_sample", "temperature", "until", "max_gen_toks", "top_p", "top_k"}
BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
# Texts whose decoding post-processing commonly changes (clean_up_tokenization_spaces rewrites
# " ." and " n't", normalizers touch spaces, accents and newlines): encoded, then decoded.
PROBE_TEXTS = ["a . b , c ? d ! e", "don ' t , isn 't , I 'm , it 's , we 've , they 're .", " x", "  two  spaces  ",
               "tab\tand\nnewline\n\n end", "caf\u00e9 na\u00efve \u20ac 5 \U0001F600 \u4e2d\u6587", "A: 1+2=3. Q?",
               " leading", "trailing ", "\u2581 metaspace char", "<s> not a special token </s>"]


def fail(msg):
    sys.exit(f"export_lmeval_task: {msg}")


def generation_settings(task_name, task, lm, default_max_gen_toks):
    """(max_gen_toks, until) exactly as HFLM.generate_until derives them from the requests."""
    from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs

    kinds = {json.dumps(inst.args[1], sort_keys=True, default=str) for inst in task.instances}
    if len(kinds) != 1:
        fail(f"{task_name}: requests carry {len(kinds)} different generation_kwargs; one pack holds one")
    kwargs = dict(normalize_gen_kwargs(task.instances[0].args[1], default_max_gen_toks))
    if kwargs.get("do_sample") or float(kwargs.get("temperature") or 0.0) > 0.0:
        fail(f"{task_name}: generation_kwargs ask for sampling (do_sample={kwargs.get('do_sample')}, "
             f"temperature={kwargs.get('temperature')}); mergesweep generates greedily only")
    extra = sorted(k for k in kwargs if k not in GREEDY_KEYS)
    if extra:
        fail(f"{task_name}: generation_kwargs {extra} change greedy decoding; not supported "
             f"(supported: {sorted(GREEDY_KEYS)})")
    eos_id = lm.eot_token_id
    eos = lm.tok_decode(eos_id, skip_special_tokens=False) if eos_id is not None else None
    until = handle_stop_sequences(kwargs.get("until"), eos=eos)
    if any(not isinstance(u, str) or u == "" for u in until):
        fail(f"{task_name}: generation_kwargs until {until!r} holds an empty or non-string stop "
             "sequence (transformers would stop after one token)")
    max_gen_toks = int(kwargs["max_gen_toks"])
    if max_gen_toks <= 0:
        fail(f"{task_name}: max_gen_toks {max_gen_toks}: must be > 0")
    return max_gen_toks, list(until)


def stop_token_ids(model_path, tokenizer, override):
    """The ids transformers' generate stops on: the model's generation_config eos_token_id (which
    lm-eval's _model_generate leaves in place), else config.json's, else the tokenizer's EOS."""
    if override is not None:
        return [int(t) for t in override]
    from transformers import AutoConfig, GenerationConfig

    eos = None
    try:
        eos = GenerationConfig.from_pretrained(model_path).eos_token_id
    except (OSError, ValueError):
        try:
            eos = AutoConfig.from_pretrained(model_path).eos_token_id
        except (OSError, ValueError):
            pass
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return [int(t) for t in (eos if isinstance(eos, (list, tuple)) else [eos])]


def decoder_model(tokenizer, name):
    """(byte_level, metaspace, byte_fallback, strip_leading_space) from the tokenizer's decoder
    (tokenizer.json); refuses a decoder whose effect on bytes is not modelled here."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    dec = state.get("decoder")
    if dec is None:
        fail(f"tokenizer {name}: no decoder (tokens are joined with spaces); not modelled")
    steps = dec["decoders"] if dec.get("type") == "Sequence" else [dec]
    m = {"byte_level": False, "metaspace": False, "byte_fallback": False, "strip": False}
    fused = False
    for s in steps:
        t = s.get("type")
        pattern = (s.get("pattern") or {}).get("String")
        if t == "ByteLevel":
            m["byte_level"] = True
        elif t == "Replace" and pattern == "\u2581" and s.get("content") == " ":
            m["metaspace"] = True
        elif t == "ByteFallback":
            m["byte_fallback"] = True
        elif t == "Fuse":
            fused = True
        elif t == "Strip" and s.get("content") == " " and s.get("stop") == 0 and s.get("start") in (0, 1) \
                and (fused or s.get("start") == 0):
            m["strip"] = s.get("start") == 1
        elif t == "Metaspace" and s.get("replacement") == "\u2581":
            m["metaspace"] = True
            m["strip"] = s.get("prepend_scheme", "always") != "never" and s.get("add_prefix_space", True)
        else:
            fail(f"tokenizer {name}: decoder step {json.dumps(s)} is not modelled by the byte table "
                 "(modelled: ByteLevel; Replace \u2581->space, ByteFallback, Fuse, Strip; Metaspace)")
    if m["byte_level"] and (m["metaspace"] or m["byte_fallback"]):
        fail(f"tokenizer {name}: decoder {json.dumps(dec)} mixes ByteLevel with SentencePiece steps")
    return m


def _byte_level_decoder():
    from tokenizers import pre_tokenizers

    # GPT-2's byte-to-unicode map: printable bytes map to themselves, the rest to U+0100 upwards.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = {chr(c): b for b, c in zip(bs, cs)}
    assert set(table) == set(pre_tokenizers.ByteLevel.alphabet())
    return table


def token_byte_table(tokenizer, vocab, model):
    """(token_bytes list, is_byte list): what each id < vocab decodes to; special tokens (skipped
    by skip_special_tokens=True) and ids the tokenizer does not know decode to nothing."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    special = {a["id"] for a in state.get("added_tokens", []) if a.get("special")}
    byte_map = _byte_level_decoder() if model["byte_level"] else None
    table, is_byte = [], []
    for i in range(vocab):
        tok = tokenizer.convert_ids_to_tokens(i) if i < len(tokenizer) else None
        b, flag = b"", 0
        if tok is not None and i not in special:
            if byte_map is not None:
                b = bytes(byte_map[c] for c in tok) if all(c in byte_map for c in tok) else tok.encode("utf-8")
            elif model["byte_fallback"] and BYTE_TOKEN.match(tok):
                b, flag = bytes([int(tok[3:5], 16)]), 1
            else:
                b = (tok.replace("\u2581", " ") if model["metaspace"] else tok).encode("utf-8")
        table.append(b)
        is_byte.append(flag)
    return table, is_byte


def decode_with_table(ids, table, is_byte, strip_leading_space):
    """The text the byte table says `ids` decode to (docs/formats.md): bytes concatenated and
    decoded as UTF-8 with U+FFFD for each maximal invalid subsequence, except that a run of
    consecutive byte-fallback tokens that is not valid UTF-8 gives one U+FFFD per token
    (tokenizers' ByteFallback decoder); tokens with no bytes are transparent; then one leading
    space is stripped when strip_leading_space."""
    parts, plain, run = [], bytearray(), bytearray()

    def flush_run():
        if run:
            try:
                parts.append(run.decode("utf-8"))
            except UnicodeDecodeError:
                parts.append("\ufffd" * len(run))
            run.clear()

    for t in ids:
        b = table[t] if 0 <= t < len(table) else b""
        if not b:
            continue
        if is_byte[t]:
            if plain:
                parts.append(plain.decode("utf-8", "replace"))
                plain.clear()
            run.extend(b)
        else:
            flush_run()
            plain.extend(b)
    flush_run()
    parts.append(plain.decode("utf-8", "replace"))
    text = "".join(parts)
    return text[1:] if strip_leading_space and text.startswith(" ") else text


def check_sequences(tokenizer, prompts, targets, is_byte, seed=1234):
    """Token sequences the self-check decodes: every id alone, the targets, the prompts' tails,
    random sequences over the vocabulary, and random mixes of byte-fallback and other tokens."""
    rng = random.Random(seed)
    n = len(tokenizer)
    seqs = [[i] for i in range(n)]
    seqs += [tokenizer.encode(t, add_special_tokens=False) for t in list(targets) + PROBE_TEXTS]
    seqs += [p[-k:] for p in prompts for k in (1, 7, 32)]
    seqs += [[rng.randrange(n) for _ in range(rng.randint(2, 48))] for _ in range(400)]
    bytes_ids = [i for i in range(n) if is_byte[i]]
    if bytes_ids:
        pool = bytes_ids + [rng.randrange(n) for _ in range(len(bytes_ids) // 4 + 1)]
        seqs += [[rng.choice(pool) for _ in range(rng.randint(2, 12))] for _ in range(2000)]
        # valid multi-byte characters spelled in byte tokens, alone and next to other tokens
        by_byte = {tokenizer.convert_ids_to_tokens(i): i for i in bytes_ids}
        for ch in "é€😀ß":
            ids = [by_byte.get(f"<0x{b:02X}>") for b in ch.encode("utf-8")]
            if None not in ids:
                seqs += [ids, ids[:-1], [rng.randrange(n)] + ids + [rng.randrange(n)]]
    return seqs


def self_check(tokenizer, name, table, is_byte, strip, sequences):
    """Refuses the export when tokenizer.decode(ids, skip_special_tokens=True) differs from the
    byte table's decoding for any sequence (e.g. clean_up_tokenization_spaces, a normalizer
    acting on decode, an unmodelled decoder)."""
    for ids in sequences:
        want = tokenizer.decode(ids, skip_special_tokens=True)
        got = decode_with_table(ids, table, is_byte, strip)
        if want != got:
            fail(f"tokenizer {name}: its decode differs from the byte table, which the engine uses to "
                 f"find `until` strings: ids {ids[:24]}{' ...' if len(ids) > 24 else ''} decode to {want!r} "
                 f"but the table gives {got!r} (check clean_up_tokenization_spaces and the decoder)")
    return len(sequences)


def prompts_and_targets(task_name, task, lm):
    """(doc_ids, prompt ids, target strings) in document order, prompts encoded by lm-eval's own
    tok_batch_encode without truncation (one context per call: the same ids as in a batch)."""
    from lm_eval.models.utils import configure_pad_token

    if (task.config.repeats or 1) != 1:
        fail(f"{task_name}: repeats={task.config.repeats}; greedy generation repeats nothing, pack with repeats 1")
    configure_pad_token(lm.tokenizer)  # as HFLM.__init__: tok_batch_encode pads
    doc_ids, prompts, targets = [], [], []
    for inst in sorted(task.instances, key=lambda i: i.doc_id):
        ids, _ = lm.tok_batch_encode([inst.args[0]])
        prompts.append([int(t) for t in ids[0].tolist()])
        if not prompts[-1]:
            fail(f"{task_name}: doc {inst.doc_id}: empty prompt after tokenization")
        doc_ids.append(inst.doc_id)
        gold = task.doc_to_target(inst.doc)
        if task.config.doc_to_choice is not None:
            gold = task.doc_to_choice(inst.doc)[gold]
        targets.append(gold if isinstance(gold, str) else json.dumps(gold) if isinstance(gold, list) else str(gold))
    if len(set(doc_ids)) != len(doc_ids):
        fail(f"{task_name}: several requests per document; one generation per document is packed")
    return doc_ids, prompts, targets


def write_generation_pack(out, attrs, prompts, doc_ids, targets, until, stops, table, is_byte):
    """Writes the pack under a temporary name in the same folder, then renames."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(out)), "." + os.path.basename(out) + ".tmp")
    s = h5py.string_dtype("utf-8")
    n = len(prompts)
    with h5py.File(tmp, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        f["gold"] = np.zeros(n, np.int32)
        f["context_tokens"] = np.asarray([t for p in prompts for t in p], np.int32)
        f["context_offsets"] = np.cumsum([0] + [len(p) for p in prompts]).astype(np.int64)
        f["choice_offsets"] = np.zeros(n + 1, np.int64)
        f["continuation_tokens"] = np.zeros(0, np.int32)
        f["continuation_offsets"] = np.zeros(1, np.int64)
        f["choice_chars"] = np.zeros(0, np.int64)
        f["choice_bytes"] = np.zeros(0, np.int64)
        f.create_dataset("until", data=np.array(until, dtype=object), dtype=s)
        f["stop_token_ids"] = np.asarray(stops, np.int32)
        f["token_bytes"] = np.frombuffer(b"".join(table), np.uint8)
        f["token_bytes_offsets"] = np.cumsum([0] + [len(b) for b in table]).astype(np.int64)
        if any(is_byte):
            f["token_is_byte"] = np.asarray(is_byte, np.uint8)
        f.create_dataset("target", data=np.array(targets, dtype=object), dtype=s)
        f["doc_id"] = np.asarray(doc_ids, np.int64)
    os.replace(tmp, out)


def export(args, task_name, task, lm, task_version):
    """The generate_until pack of `task` (requests built) for args.tokenizer, written to args.out."""
    tok, name = lm.tokenizer, args.tokenizer
    max_gen_toks, until = generation_settings(task_name, task, lm, args.max_gen_toks)
    doc_ids, prompts, targets = prompts_and_targets(task_name, task, lm)
    vocab = args.vocab_size or len(tok)
    bad = [t for p in prompts for t in p if not 0 <= t < vocab]
    if bad:
        fail(f"{task_name}: token id {bad[0]} outside [0, {vocab}); pass --vocab-size")
    model = decoder_model(tok, name)
    table, is_byte = token_byte_table(tok, vocab, model)
    checked = self_check(tok, name, table, is_byte, model["strip"],
                         check_sequences(tok, prompts, targets, is_byte))
    stops = stop_token_ids(args.tokenizer, tok, args.stop_token_ids)
    if any(not 0 <= t < vocab for t in stops):
        fail(f"stop token ids {stops}: outside [0, {vocab})")
    attrs = {"format": "mergesweep-task-pack", "format_version": np.int64(2), "output_type": "generate_until",
             "name": args.name or task_name, "source_task": task_name, "task_version": task_version,
             "tokenizer": args.tokenizer, "num_fewshot": np.int64(task.config.num_fewshot or 0),
             "vocab_size": np.int64(vocab), "max_gen_toks": np.int64(max_gen_toks),
             "strip_leading_space": np.int64(int(model["strip"]))}
    write_generation_pack(args.out, attrs, prompts, doc_ids, targets, until, stops, table, is_byte)
    print(f"export_lmeval_task: {task_name}: {len(prompts)} generate_until items, max_gen_toks {max_gen_toks}, "
          f"until {until!r}, stop ids {stops}; byte table checked on {checked} sequences -> {args.out}",
          file=sys.stderr)
