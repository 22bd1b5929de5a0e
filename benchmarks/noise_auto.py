"""`--noise auto` against `confidence` and `fuse` on the teacher's real labels, from 16 to 1,000 texts.

    .venv/bin/python benchmarks/noise_auto.py --data-dir $EVOKD_DATA [--datasets sst2,trec,ag_news]
        [--sizes 16,32,64,128,256,512,1000] [--draws 1,2,3,4,5]

For each dataset, size n and draw: the example task's seeds (`datasets/NAME/task.yaml`, trusted) plus n
random train rows of the teacher-labeled set (`benchmarks/data/teacher_labels`: the embedded teacher's
label and confidence for each; the draw seeds the sample), trained into the frozen minilm student with
label anchors, as the loop's student, once per noise mode through `evokd.noise.fit_recorded` (what the
loop and `evokd distill` call), and scored on the set's test rows with their gold labels. Also recorded:
EM's lowest per-label estimate of how often the teacher names a label right, which `auto` decides by,
what `auto` chose, and how many training labels are right before and after fusion (against the gold
labels, which no mode sees). ag_news's set holds exactly 1,000 train rows, so at n = 1,000 its draws
are the same rows.

Writes benchmarks/noise_auto.json and benchmarks/noise_auto.md (machine, date, commit, command).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
from evokd import datadir  # noqa: E402

DATA = datadir.for_script(__file__, required="--render" not in sys.argv)
LABELS = HERE / "data" / "teacher_labels"
OUT = HERE / "noise_auto.json"
MODES = ("confidence", "fuse", "auto")
STUDENT = "minilm"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def split_rows(name: str, split: str) -> list[dict]:
    path = datadir.split_file(DATA / name, split)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cells_of(name: str, sizes: list[int], draws: list[int]) -> list[dict]:
    """Every (n, draw) cell of one dataset: the three modes' test accuracy and what auto saw and chose."""
    import torch

    from evokd.noise import fit_recorded, training_rows
    from evokd.task import load_task

    torch.set_num_threads(1)
    task = load_task(ROOT / "datasets" / name / "task.yaml")
    labeled = [json.loads(line) for line in (LABELS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    train_split, test_split = split_rows(name, "train"), split_rows(name, "test")
    taught = [r for r in labeled if r["split"] == "train" and r["label"] is not None]
    test = [test_split[r["row"]] for r in labeled if r["split"] == "test"]
    test_texts, test_gold = [r["text"] for r in test], [r["label"] for r in test]
    seeds = [{"text": r["text"], "label": r["label"]} for r in task.seed_rows()]
    alone = fit_recorded(STUDENT, seeds, task, "auto")[0].predict(test_texts)  # the seed-only student
    seed_only = round(sum(p == g for p, g in zip(alone, test_gold)) / len(test_gold), 4)
    out = []
    for n in sizes:
        if n > len(taught):
            continue
        for draw in draws:
            sample = random.Random(draw).sample(taught, n)
            rows = seeds + [{"text": train_split[r["row"]]["text"], "label": r["label"], "teacher_confidence": r["confidence"]}
                            for r in sample]
            gold = [train_split[r["row"]]["label"] for r in sample]
            fused = training_rows(rows, task, "fuse", draw)[0][len(seeds):]
            cell = {"dataset": name, "n": n, "draw": draw, "seed_only": seed_only,
                    "teacher_labels_right": round(sum(r["label"] == g for r, g in zip(rows[len(seeds):], gold)) / n, 4),
                    "fused_labels_right": round(sum(r["label"] == g for r, g in zip(fused, gold)) / n, 4)}
            for mode in MODES:
                student, record = fit_recorded(STUDENT, rows, task, mode, draw)
                predicted = student.predict(test_texts)
                cell[mode] = round(sum(p == g for p, g in zip(predicted, test_gold)) / len(test_gold), 4)
                if mode == "auto":
                    cell["lowest_estimate"] = min(record["teacher_right_estimate"].values())
                    cell["auto_chose"] = record["auto_chose"]
            out.append(cell)
            log(json.dumps(cell))
    return out


def summary(cells: list[dict]) -> list[dict]:
    """Per dataset and size: each mode's mean accuracy, auto's paired differences, its choices and the
    range of EM's lowest estimate."""
    rows = []
    for key in dict.fromkeys((c["dataset"], c["n"]) for c in cells):
        group = [c for c in cells if (c["dataset"], c["n"]) == key]
        row = {"dataset": key[0], "n": key[1], "draws": len(group), "seed_only": group[0]["seed_only"],
               **{mode: round(statistics.mean(c[mode] for c in group), 4) for mode in MODES},
               "auto_fused": sum(c["auto_chose"] == "fuse" for c in group),
               "lowest_estimate": [min(c["lowest_estimate"] for c in group), max(c["lowest_estimate"] for c in group)],
               "teacher_labels_right": round(statistics.mean(c["teacher_labels_right"] for c in group), 4),
               "fused_labels_right": round(statistics.mean(c["fused_labels_right"] for c in group), 4)}
        for other in ("confidence", "fuse"):
            diffs = [100 * (c["auto"] - c[other]) for c in group]
            row[f"auto_minus_{other}"] = [round(statistics.mean(diffs), 2),
                                          round(statistics.stdev(diffs), 2) if len(diffs) > 1 else 0.0]
        rows.append(row)
    return rows


def render(result: dict) -> str:
    lines = ["# `--noise auto` against `confidence` and `fuse`, by the number of teacher-labeled texts", "",
             f"Machine: {result['machine']}; {result['date']}; commit {result['commit']}.", "",
             f"Command (from the project root): `.venv/bin/python {result['command']}`", "",
             "Each cell: the example task's seeds plus n random train rows of the teacher-labeled set "
             "(`benchmarks/data/teacher_labels`, the embedded teacher's labels and confidences), trained into the "
             f"frozen `{STUDENT}` student with label anchors through `evokd.noise.fit_recorded` (as the loop's student "
             "trains), once per `--noise` mode, and scored on the set's test rows (gold labels). `auto` fuses when "
             "EM estimates that the teacher names some label's texts right less than half the time "
             "(`evokd.noise.AUTO_FUSE_BELOW`), and weighs the teacher's own labels by its confidence otherwise. "
             "Accuracy is the mean over the draws; the differences are paired by draw, in points (mean ± sample "
             "sd). \"lowest estimate\" is the range over the draws of EM's lowest per-label estimate; \"labels "
             "right\" is the share of the n training labels that are right, the teacher's and the fused ones "
             "(against gold labels that no mode sees). ag_news's set holds exactly 1,000 train rows: at n = 1,000 "
             "its draws are the same rows. seed-only: the same student on the seeds alone, on the same test rows.", "",
             "| dataset | n | draws | seed-only | confidence | fuse | auto | auto − confidence | auto − fuse | auto fused | "
             "lowest estimate | labels right (teacher → fused) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["summary"]:
        lines.append(f"| {r['dataset']} | {r['n']} | {r['draws']} | {r['seed_only']:.3f} | {r['confidence']:.3f} | {r['fuse']:.3f} | "
                     f"{r['auto']:.3f} | {r['auto_minus_confidence'][0]:+.1f} ± {r['auto_minus_confidence'][1]:.1f} | "
                     f"{r['auto_minus_fuse'][0]:+.1f} ± {r['auto_minus_fuse'][1]:.1f} | {r['auto_fused']} of {r['draws']} | "
                     f"{r['lowest_estimate'][0]:.2f}–{r['lowest_estimate'][1]:.2f} | "
                     f"{r['teacher_labels_right']:.1%} → {r['fused_labels_right']:.1%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="sst2,trec,ag_news")
    parser.add_argument("--sizes", default="16,32,64,128,256,512,1000")
    parser.add_argument("--draws", default="1,2,3,4,5")
    parser.add_argument("--render", action="store_true", help="only re-render noise_auto.md from noise_auto.json")
    args = parser.parse_args()
    from distill_students import result_header, write_result

    if args.render:
        write_result(OUT, json.loads(OUT.read_text(encoding="utf-8")), render)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    draws = [int(d) for d in args.draws.split(",")]
    cells = []
    for name in args.datasets.split(","):
        cells += cells_of(name, sizes, draws)
    header = result_header("noise_auto", "noise_auto.py")
    header["command"] = header["command"].replace("noise_auto.py", "noise_auto.py --data-dir $EVOKD_DATA", 1)
    result = {**header, "student": STUDENT, "cells": cells, "summary": summary(cells)}
    write_result(OUT, result, render)


if __name__ == "__main__":
    main()
