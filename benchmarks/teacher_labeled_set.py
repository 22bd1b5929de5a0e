"""Label a fixed benchmark set with the embedded teacher, once, so students can be measured on its real noise.

    .venv/bin/python benchmarks/teacher_labeled_set.py --data-dir $EVOKD_DATA [--datasets sst2,trec,ag_news]

For each dataset it draws `--train-n` random rows of the data folder's train split (seed 0; sst2: texts of
6+ words, as `datasets/make_seeds.py` draws seeds; the example task's seed texts excluded) and `--test-n`
random rows of its test split (all of them when the split is smaller), and labels every one with the
prompt the loop labels with (`evokd.loop.teacher_setup.build_teacher` on the example task
`datasets/NAME/task.yaml` and its seeds; greedy label, its scored probability as the confidence).

Writes `benchmarks/data/teacher_labels/NAME.jsonl`, one row per labeled text:
`{"split": "train"|"test", "row": LINE, "label": ..., "confidence": ...}`, where LINE is the 0-based line
of the text in `EVOKD_DATA/NAME/SPLIT.jsonl`. No texts are stored (AG News may not be redistributed): a
reader joins the rows back to the data folder (`benchmarks/students_teacher.py`). The teacher's
accuracy on both draws and the command are in `benchmarks/data/teacher_labels/README.md`.

Labeling is appended to `NAME.partial.jsonl` in chunks; an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from evokd import datadir  # noqa: E402  (the benchmark data folder: --data-dir or EVOKD_DATA)

DATA = datadir.for_script(__file__, required="--render" not in sys.argv)
OUT = ROOT / "benchmarks" / "data" / "teacher_labels"
DATASETS = ("sst2", "trec", "ag_news")
MIN_WORDS = {"sst2": 6}  # as datasets/make_seeds.py draws sst2's seeds: GLUE's train split is mostly phrases
CHUNK = 50


def machine() -> str:
    from evokd.bench.aggregate import machine as described

    m = described()
    return f"{m['cpu']}, {m['cores']} cores; Python {m['python']}"


def split_rows(dataset: str, split: str) -> list[dict]:
    """Every row of the data folder's split, in file order (the row ids are these positions)."""
    path = datadir.split_file(DATA / dataset, split)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]


def draw(dataset: str, split: str, n: int, exclude: set[str], seed: int) -> list[int]:
    """`n` random row ids of the split (all eligible ones when fewer), sorted."""
    rows = split_rows(dataset, split)
    words = MIN_WORDS.get(dataset, 0) if split == "train" else 0
    eligible = [i for i, r in enumerate(rows) if r["text"] not in exclude and len(r["text"].split()) >= words]
    picked = eligible if n >= len(eligible) else random.Random(seed).sample(eligible, n)
    return sorted(picked)


def read_labeled(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def label_dataset(dataset: str, train_n: int, test_n: int, seed: int, threads: int | None) -> dict:
    from evokd.loop.teacher_setup import build_teacher
    from evokd.task import load_task
    from evokd.teacher.local import make_local_lm

    task = load_task(ROOT / "datasets" / dataset / "task.yaml")
    seeds = task.seed_rows()
    seen = {r["text"] for r in seeds}
    wanted = [("train", i) for i in draw(dataset, "train", train_n, seen, seed)]
    wanted += [("test", i) for i in draw(dataset, "test", test_n, seen, seed)]
    texts = {split: split_rows(dataset, split) for split in ("train", "test")}

    partial = OUT / f"{dataset}.partial.jsonl"
    done = {(r["split"], r["row"]) for r in read_labeled(partial)}
    todo = [key for key in wanted if key not in done]
    teacher = build_teacher(task, seeds, make_local_lm(temperature=0.8, max_tokens=256, n_threads=threads), {})
    start = time.perf_counter()
    for at in range(0, len(todo), CHUNK):
        chunk = todo[at:at + CHUNK]
        out = teacher.label_many(0, [texts[split][row]["text"] for split, row in chunk])
        teacher.drain_calls()
        with partial.open("a") as f:
            for (split, row), (label, _reason, *confidence) in zip(chunk, out):
                f.write(json.dumps({"split": split, "row": row, "label": label,
                                    "confidence": round(confidence[0], 4) if confidence and confidence[0] is not None
                                    else None}) + "\n")
        rate = (at + len(chunk)) / (time.perf_counter() - start)
        print(f"{dataset}: {len(done) + at + len(chunk)}/{len(wanted)} labeled ({rate:.2f} texts/s)", flush=True)
    seconds = time.perf_counter() - start

    order = {key: n for n, key in enumerate(wanted)}
    labeled = sorted((r for r in read_labeled(partial) if (r["split"], r["row"]) in order),
                     key=lambda r: order[(r["split"], r["row"])])
    (OUT / f"{dataset}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in labeled))
    partial.unlink()
    summary = {"labeled_seconds_this_run": round(seconds, 1), "texts_labeled_this_run": len(todo)}
    for split in ("train", "test"):
        rows = [r for r in labeled if r["split"] == split]
        right = [r["label"] == texts[split][r["row"]]["label"] for r in rows]
        summary[split] = {"n": len(rows), "teacher_accuracy": round(sum(right) / len(rows), 4)}
    return summary


def render(result: dict) -> str:
    lines = [
        "# Teacher-labeled benchmark set",
        "",
        "The embedded teacher's labels and confidences for random rows of the benchmark data folder's train and test",
        "splits, made once so that students can be measured on the teacher's real label noise without running it",
        "(`benchmarks/students_teacher.py`). One file per dataset, one row per labeled text:",
        '`{"split": "train"|"test", "row": LINE, "label": ..., "confidence": ...}`; LINE is the 0-based line of the',
        "text in `$EVOKD_DATA/NAME/SPLIT.jsonl` (texts are not stored: AG News may not be redistributed).",
        "",
        "- Commands (a dataset's row is made by the last command that names it):",
        *[f"  - {name}: `{d.get('command', result.get('command'))}`" for name, d in result["datasets"].items()],
        f"- Date: {result['date']}; machine: {result['machine']}",
        "- Teacher: the embedded teacher (Qwen2.5-Coder-1.5B-Instruct Q4_K_M through llama.cpp), labeling with the",
        "  prompt the loop uses on the example task `datasets/NAME/task.yaml` (its seeds as demonstrations), greedy;",
        "  the confidence is the scored probability of the chosen label among the task's labels.",
        "- Draw: random seed 0; train rows exclude the example task's seed texts; sst2 train rows have 6+ words",
        "  (GLUE's train split is mostly phrases, as `datasets/make_seeds.py` draws seeds).",
        "",
        "| dataset | train rows | teacher accuracy (train) | test rows | teacher accuracy (test) |",
        "|---|---|---|---|---|",
    ]
    for name, s in result["datasets"].items():
        lines.append(f"| {name} | {s['train']['n']} | {s['train']['teacher_accuracy']:.4f} | {s['test']['n']} | "
                     f"{s['test']['teacher_accuracy']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="the benchmark data folder (default: $EVOKD_DATA)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--train-n", type=int, default=2000)
    parser.add_argument("--test-n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: all cores)")
    parser.add_argument("--render", action="store_true", help="rewrite README.md from the stored summary only")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    summary_path = OUT / "summary.json"
    result = json.loads(summary_path.read_text()) if summary_path.exists() else {"datasets": {}}
    if not args.render:
        for dataset in args.datasets.split(","):
            command = " ".join(["python benchmarks/teacher_labeled_set.py --data-dir $EVOKD_DATA", *sys.argv[1:]])
            result["datasets"][dataset] = {**label_dataset(dataset, args.train_n, args.test_n, args.seed, args.threads),
                                           "command": command}
            result.pop("command", None)  # once for all datasets, before each dataset kept its own
            result.update(date=dt.date.today().isoformat(), machine=machine())
            summary_path.write_text(json.dumps(result, indent=2) + "\n")
    (OUT / "README.md").write_text(render(result))


if __name__ == "__main__":
    main()
