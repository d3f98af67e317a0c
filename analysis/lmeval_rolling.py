"""loglikelihood_rolling task packs (perplexity tasks such as wikitext; docs/formats.md, "Task
packs, format_version 2"), called by export_lmeval_task.py.

The windows are lm-eval's own: HFLM.loglikelihood_rolling runs on the tokenizer-side HFLM (its
tok_encode, prefix_token_id, get_rolling_token_windows and make_disjoint_window with the given
max_length, context_len 1) and the windows it hands to _loglikelihood_tokens are captured. Each
window becomes one item (its context, one choice holding its continuation); lm-eval sums a
document's windows, and weighs documents by the task's own count_words / count_bytes of
doc_to_target, which the pack stores per document.
"""
import sys


def fail(msg):
    sys.exit(f"export_lmeval_task: {msg}")


def windows_by_doc(task, lm, captured, max_length):
    """[(instance, [(context ids, continuation ids), ...]), ...] in document order."""
    from lm_eval.api.model import CacheHook

    if not max_length or max_length <= 0:
        fail("loglikelihood_rolling needs --max-length: the window length lm-eval's HF backend uses (the model's "
             "max_position_embeddings, or its max_length model argument)")
    lm._max_length = max_length
    lm.batch_size_per_gpu = 64  # windows per captured call: grouping only, never the windows themselves
    lm._rank, lm._world_size = 0, 1
    lm.cache_hook = CacheHook(None)
    out = []
    for inst in sorted(task.instances, key=lambda i: i.doc_id):
        before = len(captured)
        lm.loglikelihood_rolling([inst], disable_tqdm=True)
        out.append((inst, [(list(ctx), list(cont)) for _, ctx, cont in captured[before:]]))
    return out


def pack_arrays(task, lm, captured, max_length, vocab):
    """The flat arrays of a rolling pack: one item per window, documents' words and bytes."""
    a = {k: [] for k in ("gold", "context_tokens", "continuation_tokens", "choice_chars", "choice_bytes", "doc_id",
                         "item_doc", "doc_words", "doc_bytes")}
    a.update(context_offsets=[0], choice_offsets=[0], continuation_offsets=[0])
    for d, (inst, windows) in enumerate(windows_by_doc(task, lm, captured, max_length)):
        text = task.doc_to_target(inst.doc)
        a["doc_words"].append(task.count_words(text))
        a["doc_bytes"].append(task.count_bytes(text))
        for ctx, cont in windows:
            if not ctx or not cont:
                fail(f"doc {inst.doc_id}: a window with an empty context or continuation")
            if len(ctx) + len(cont) > max_length + 1:
                fail(f"doc {inst.doc_id}: a window of {len(ctx) + len(cont)} tokens exceeds max_length + 1")
            a["gold"].append(0)
            a["doc_id"].append(inst.doc_id)
            a["item_doc"].append(d)
            a["context_tokens"].extend(ctx)
            a["context_offsets"].append(len(a["context_tokens"]))
            a["continuation_tokens"].extend(cont)
            a["continuation_offsets"].append(len(a["continuation_tokens"]))
            a["choice_chars"].append(0)  # unused: a window has no choice text
            a["choice_bytes"].append(0)
            a["choice_offsets"].append(len(a["choice_chars"]))
    bad = [t for t in a["context_tokens"] + a["continuation_tokens"] if not 0 <= t < vocab]
    if bad:
        fail(f"token id {bad[0]} outside [0, {vocab}); pass --vocab-size")
    if not a["gold"]:
        fail("no windows: every document is empty")
    return a
