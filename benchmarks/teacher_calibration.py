"""Is the embedded teacher's labeling biased toward some labels, and does calibrating its label
probabilities fix it? Measured on the test rows of the teacher-labeled set (benchmarks/data/teacher_labels/).

    .venv/bin/python benchmarks/teacher_calibration.py --data-dir $EVOKD_DATA [--datasets sst2,trec,ag_news]

For each dataset, the teacher that labeled the set (`evokd.loop.teacher_setup.build_teacher` on the example
task `datasets/NAME/task.yaml` and its seeds, as benchmarks/teacher_labeled_set.py) gives every label's
probability for each test row (`Teacher.label_distribution`: the same scored labeling call, so its argmax is
the set's label) and for three content-free texts ("N/A", "[MASK]", "..."). Scored by accuracy and macro-F1
against the gold labels, with each row's label taken as the argmax of:

- **raw**: the teacher's probabilities, as the loop labels today;
- **content-free**: the probabilities divided by the mean over the content-free texts (Zhao et al., 2021,
  "Calibrate Before Use");
- **batch**: the probabilities divided by their mean over the rows themselves (Zhou et al., 2023, "Batch
  Calibration"): no labels needed, only a batch of the task's texts; it assumes no label is much rarer
  than the others in the batch;
- **batch, 50 texts**: the same with the mean over 50 random rows only (what a run would know after
  labeling 50 texts), mean ± sd over 100 random draws of the 50.

Each row's distribution is cached in runs/bench-cache/teacher-calibration/NAME.jsonl (a re-run resumes).
Writes benchmarks/teacher_calibration.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from evokd import datadir  # noqa: E402

DATA = datadir.for_script(__file__)
from teacher_labeled_set import machine, split_rows  # noqa: E402

LABELS = ROOT / "benchmarks" / "data" / "teacher_labels"
CACHE = ROOT / "runs" / "bench-cache" / "teacher-calibration"
RESULTS = ROOT / "benchmarks" / "teacher_calibration.json"
CONTENT_FREE = ("N/A", "[MASK]", "...")
SUBSET_N, SUBSET_DRAWS = 50, 100


def distributions(name: str, threads: int | None) -> tuple[list[str], list[dict]]:
    """(the task's labels, one cached row per test row and content-free text: split, row, probs, gold)."""
    from evokd.loop.teacher_setup import build_teacher
    from evokd.task import load_task
    from evokd.teacher.local import make_local_lm

    task = load_task(ROOT / "datasets" / name / "task.yaml")
    labels = task.label_names
    test = split_rows(name, "test")
    wanted = [("content-free", i, text, None) for i, text in enumerate(CONTENT_FREE)]
    wanted += [("test", r["row"], test[r["row"]]["text"], test[r["row"]]["label"])
               for r in map(json.loads, (LABELS / f"{name}.jsonl").read_text().splitlines()) if r["split"] == "test"]
    path = CACHE / f"{name}.jsonl"
    done = {(r["split"], r["row"]): r for r in map(json.loads, path.read_text().splitlines())} if path.is_file() else {}
    todo = [w for w in wanted if (w[0], w[1]) not in done]
    if todo:
        teacher = build_teacher(task, task.seed_rows(), make_local_lm(temperature=0.8, max_tokens=256, n_threads=threads), {})
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with path.open("a") as f:
            for n, (split, row, text, gold) in enumerate(todo, 1):
                distribution = teacher.label_distribution(0, text)
                teacher.drain_calls()
                if distribution is None:
                    sys.exit(f"{name} {split} row {row}: the teacher gave no label")
                record = {"split": split, "row": row, "probs": [distribution[label] for label in labels], "gold": gold}
                f.write(json.dumps(record) + "\n")
                f.flush()
                done[(split, row)] = record
                if n % 50 == 0 or n == len(todo):
                    print(f"{name}: {n}/{len(todo)} ({n / (time.perf_counter() - start):.2f} texts/s)", flush=True)
    return labels, [done[(w[0], w[1])] for w in wanted]


def scores(labels: list[str], probs, gold: list[str]) -> dict:
    from sklearn.metrics import f1_score

    pred = [labels[i] for i in probs.argmax(axis=1)]
    return {"accuracy": round(sum(p == g for p, g in zip(pred, gold)) / len(gold), 4),
            "macro_f1": round(float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)), 4),
            "predicted": {label: pred.count(label) for label in labels}}


def evaluate(name: str, labels: list[str], rows: list[dict]) -> dict:
    import numpy as np

    test = [r for r in rows if r["split"] == "test"]
    probs = np.array([r["probs"] for r in test])
    gold = [r["gold"] for r in test]
    set_labels = {r["row"]: r["label"] for r in map(json.loads, (LABELS / f"{name}.jsonl").read_text().splitlines())
                  if r["split"] == "test"}
    same = sum(labels[i] == set_labels[r["row"]] for i, r in zip(probs.argmax(axis=1), test)) / len(test)
    content_free = np.array([r["probs"] for r in rows if r["split"] == "content-free"]).mean(axis=0)
    batch = probs.mean(axis=0)
    rng = np.random.default_rng(0)
    subset = [scores(labels, probs / probs[rng.choice(len(probs), SUBSET_N, replace=False)].mean(axis=0), gold)
              for _ in range(SUBSET_DRAWS)]
    return {
        "n": len(test), "labels": labels, "gold": {label: gold.count(label) for label in labels},
        "same_label_as_the_set": round(same, 4),
        "content_free_mean": [round(float(v), 4) for v in content_free], "batch_mean": [round(float(v), 4) for v in batch],
        "raw": scores(labels, probs, gold), "content-free": scores(labels, probs / content_free, gold),
        "batch": scores(labels, probs / batch, gold),
        f"batch, {SUBSET_N} texts": {key: [round(float(np.mean([s[key] for s in subset])), 4),
                                           round(float(np.std([s[key] for s in subset])), 4)]
                                     for key in ("accuracy", "macro_f1")},
    }


def render(result: dict) -> str:
    lines = ["# The embedded teacher's label bias, and calibrating it", "",
             "Made by `benchmarks/teacher_calibration.py` (what each row means is in its docstring). The test rows of "
             "the teacher-labeled set (`benchmarks/data/teacher_labels/`), labeled with the loop's prompt; each row's "
             "label is the argmax of the teacher's label probabilities, raw or divided by a mean distribution. "
             "Accuracy and macro-F1 against the gold labels; Δ in points against raw.", "",
             "| dataset | rows | row | accuracy | Δ | macro-F1 | Δ | labels predicted |", "|---|---|---|---|---|---|---|---|"]
    for name, d in result["datasets"].items():
        raw = d["raw"]
        for row in ("raw", "content-free", "batch"):
            s = d[row]
            lines.append(f"| {name} | {d['n']} | {row} | {s['accuracy']:.3f} | {100 * (s['accuracy'] - raw['accuracy']):+.1f} | "
                         f"{s['macro_f1']:.3f} | {100 * (s['macro_f1'] - raw['macro_f1']):+.1f} | "
                         + ", ".join(f"{k} {v}" for k, v in s["predicted"].items()) + " |")
        sub = d[f"batch, {SUBSET_N} texts"]
        lines.append(f"| {name} | {d['n']} | batch, mean of {SUBSET_N} texts | {sub['accuracy'][0]:.3f} ± {sub['accuracy'][1]:.3f} | "
                     f"{100 * (sub['accuracy'][0] - raw['accuracy']):+.1f} | {sub['macro_f1'][0]:.3f} ± {sub['macro_f1'][1]:.3f} | "
                     f"{100 * (sub['macro_f1'][0] - raw['macro_f1']):+.1f} | gold: "
                     + ", ".join(f"{k} {v}" for k, v in d["gold"].items()) + " |")
    lines += ["", "Mean distributions (the divisors), in the task's label order:", ""]
    for name, d in result["datasets"].items():
        lines.append(f"- {name} ({', '.join(d['labels'])}): content-free {d['content_free_mean']}, batch {d['batch_mean']}; "
                     f"the raw argmax is the set's label on {100 * d['same_label_as_the_set']:.1f}% of the rows")
    lines += ["", f"- Machine: {result['machine']}; date: {result['date']}", f"- Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="the benchmark data folder (default: $EVOKD_DATA)")
    parser.add_argument("--datasets", default="sst2,trec,ag_news")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: EVOKD_LOCAL_THREADS or 1)")
    args = parser.parse_args()
    result = {"command": f"python benchmarks/teacher_calibration.py --data-dir $EVOKD_DATA --datasets {shlex.quote(args.datasets)}"
                         + (f" --threads {args.threads}" if args.threads else ""),
              "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
              "datasets": {}}
    for name in args.datasets.split(","):
        labels, rows = distributions(name, args.threads)
        result["datasets"][name] = evaluate(name, labels, rows)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    RESULTS.with_suffix(".md").write_text(render(result))
    print(RESULTS.with_suffix(".md"))


if __name__ == "__main__":
    main()
