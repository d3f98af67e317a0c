#!/usr/bin/env python3
"""Export every task pack a sweep spec names, in one command, into the layout the spec expects.

A study's spec lists its packs under eval.tasks, e.g. `packs/qwen3/arc_easy.h5` or, for an
lm-eval group, a glob such as `packs/qwen3/mmlu*.h5`. For each entry this exports the lm-eval task
of that name (the file name without `.h5` and `*`); a group is expanded by lm-eval's own task
manager into its subtasks, one pack per subtask (`packs/qwen3/mmlu_anatomy.h5`, ...), each made
by analysis/export_lmeval_task.py with the same options. Paths are relative to the spec.

Needs lm-eval and transformers (a separate venv, never the project's interpreter) and the
datasets and tokenizer: from the hub, or from a cache filled beforehand on a node with network
(then run with HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1). A missing module or dataset ends with one
line that says what to install or download.

  python analysis/export_study_packs.py jobs/systematic-study/qwen3-8b.yaml --tokenizer Qwen/Qwen3-8B
  python analysis/export_study_packs.py SPEC --tokenizer ./model --include-path my_tasks --limit 50
"""
import argparse
import fnmatch
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def die(msg):
    print(f"export_study_packs: {msg}", file=sys.stderr)
    sys.exit(2)


def require_modules():
    missing = []
    for mod in ("lm_eval", "transformers", "h5py", "yaml"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        die(f"{', '.join(missing)} not importable by {sys.executable}; install them in a separate venv: "
            "python3 -m venv ~/lmeval && ~/lmeval/bin/pip install lm-eval==0.4.13 transformers torch h5py")


def spec_packs(spec_path):
    """(pattern as written, absolute output folder, task name) for each eval.tasks entry."""
    import yaml

    with open(spec_path, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    tasks = ((spec or {}).get("eval") or {}).get("tasks")
    if not tasks:
        die(f"{spec_path}: eval.tasks lists no task pack")
    tasks = [tasks] if isinstance(tasks, str) else tasks
    base = os.path.dirname(os.path.abspath(spec_path))
    out = []
    for pattern in tasks:
        name = os.path.basename(pattern)
        if not name.endswith(".h5"):
            die(f"{spec_path}: eval.tasks: '{pattern}' is not a .h5 task pack")
        task = name[:-3].rstrip("*")
        out.append((pattern, os.path.join(base, os.path.dirname(pattern)), task))
    return out


def leaf_tasks(name, manager):
    """The task's own name, or the leaves of an lm-eval group (nested groups flattened), in order."""
    from lm_eval.tasks import get_task_dict

    def walk(d):
        for key, value in d.items():
            if isinstance(value, dict):
                yield from walk(value)
            else:
                yield key if isinstance(key, str) else getattr(key, "group_name", str(key))

    return list(dict.fromkeys(walk(get_task_dict([name], manager))))


def explain_load_error(task, err):
    text = f"{type(err).__name__}: {err}"
    offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    if "offline" in text.lower() or "connection" in text.lower() or "couldn't reach" in text.lower() or offline:
        die(f"{task}: its dataset is not in the local cache ({text.splitlines()[0][:200]}); on a node with network run "
            f"this command once without HF_DATASETS_OFFLINE/HF_HUB_OFFLINE to fill the cache, then copy the cache "
            f"(HF_HOME) to this node")
    die(f"{task}: lm-eval could not load it: {text.splitlines()[0][:300]}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", help="a sweep spec (YAML) whose eval.tasks name the packs")
    ap.add_argument("--tokenizer", required=True, help="HF tokenizer name or folder (the study's base model)")
    ap.add_argument("--include-path", help="folder of extra lm-eval task YAMLs")
    ap.add_argument("--limit", type=int, default=None, help="first N documents of each task")
    ap.add_argument("--dry-run", action="store_true", help="list what would be exported")
    ap.add_argument("--force", action="store_true", help="export packs that exist already")
    args, passthrough = ap.parse_known_args(argv)  # the rest goes to export_lmeval_task.py
    require_modules()
    from lm_eval.tasks import TaskManager

    sys.path.insert(0, HERE)
    import export_lmeval_task

    manager = TaskManager(include_path=args.include_path) if args.include_path else TaskManager()
    plan = []
    for pattern, folder, task in spec_packs(args.spec):
        try:
            leaves = leaf_tasks(task, manager)
        except Exception as err:  # lm-eval raises many kinds for an unknown task or a missing dataset
            explain_load_error(task, err)
        glob = os.path.basename(pattern)[:-3]
        leaves = [t for t in leaves if fnmatch.fnmatch(t, glob)] or leaves
        if len(leaves) > 1 and "*" not in pattern:
            die(f"{args.spec}: eval.tasks: '{pattern}' is the group {task} of {len(leaves)} tasks; write it as a glob "
                f"('{os.path.dirname(pattern)}/{task}*.h5') so that the spec reads one pack per subtask")
        plan.extend((leaf, os.path.join(folder, leaf + ".h5")) for leaf in leaves)
    for leaf, out in plan:
        if args.dry_run or (os.path.exists(out) and not args.force):
            print(f"{'would export' if args.dry_run else 'exists, kept'}: {leaf} -> {out}", file=sys.stderr)
            continue
        os.makedirs(os.path.dirname(out), exist_ok=True)
        cmd = ["--task", leaf, "--tokenizer", args.tokenizer, "--out", out] + passthrough
        if args.include_path:
            cmd += ["--include-path", args.include_path]
        if args.limit is not None:
            cmd += ["--limit", str(args.limit)]
        try:
            export_lmeval_task.main(cmd)
        except SystemExit as e:
            if e.code not in (None, 0):
                die(f"{leaf}: {e.code}")
        except Exception as err:
            explain_load_error(leaf, err)
    print(f"export_study_packs: {len(plan)} packs for {args.spec}", file=sys.stderr)


if __name__ == "__main__":
    main()
