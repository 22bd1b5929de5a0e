"""A bench cell's own accepted texts trained again with each `--noise` mode: which mode, not which texts.

    .venv/bin/python benchmarks/noise_replay.py --data-dir $EVOKD_DATA --work-dir runs/bench/NAME \
        --out benchmarks/results/NAME-noise-replay.json [--strategy evokd] [--student minilm]

Two cells of one loop that ran with different `--noise` modes also wrote different texts (the teacher
samples afresh), so their difference mixes the mode with run-to-run spread. This takes each finished
cell of `--strategy` in an `evokd bench` work dir, and for its first round and its last trains the
cell's student on the seeds plus the texts accepted up to that round once per mode (`confidence`,
`fuse`, `auto`) through `evokd.noise.fit_recorded`, as the loop did, then scores macro-F1 on the
cell's eval rows (the bench's test rows). Nothing calls the teacher.

Two candidates that are not modes are trained beside them, to see what a different `auto` would do:
- "posterior weights": the teacher's own labels, each weighted as `confidence` weighs a label given with
  the fusion's posterior probability of that label (`evokd.noise.fusion`), so a text the anchored student
  doubts weighs less even where fusion would keep its label;
- "auto below T": `fuse` where EM's lowest per-label estimate (recorded per replay) is below T, else
  `confidence`, for T in AUTO_LINES (auto's own line is `evokd.noise.AUTO_FUSE_BELOW`); computed from the
  columns, nothing more is trained.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from evokd import datadir  # noqa: E402

datadir.for_script(__file__)
MODES = ("confidence", "fuse", "auto")
AUTO_LINES = (0.5, 0.6, 0.75, 0.9)


def posterior_weighted(student: str, rows: list[dict], task, seed: int = 0):
    """`student` fitted on the rows with the teacher's labels, each teacher-labeled row weighted by the
    `confidence` weight of the fusion's posterior probability of its own label."""
    from evokd.noise import confidence_weights, fusion, training_weights
    from evokd.students import fit_student, make_student

    texts, labels = [r["text"] for r in rows], [r[task.target_key] for r in rows]
    confidence = [r.get("teacher_confidence") for r in rows]
    fused = fusion(texts, labels, confidence, task.label_names, label_texts=task.label_descriptions, seed=seed)
    model = make_student(student)
    if isinstance(fused, str):  # no fusion: the confidence weights
        weights = training_weights(model, rows, task, "confidence", seed)[0]
    else:
        taught, posterior, _ = fused
        for row, i in enumerate(taught):
            confidence[i] = float(posterior[row, task.label_names.index(labels[i])])
        weights = confidence_weights(confidence, len(task.label_names))
    return fit_student(model, texts, labels, task, sample_weight=weights)


def replay(work_dir: Path, strategy: str, student: str) -> list[dict]:
    import torch
    from sklearn.metrics import f1_score

    from evokd.noise import fit_recorded
    from evokd.task import load_task

    torch.set_num_threads(1)
    out = []
    for cell in sorted((work_dir / "cells").glob(f"*/{student}/{strategy}")):
        if not (cell / "cell.json").is_file():
            continue  # unfinished
        draw = cell.parts[-3]
        task = load_task(work_dir / "tasks" / draw / "task.yaml")
        eval_rows = task.eval_data()[0]
        texts, gold = [r["text"] for r in eval_rows], [r[task.target_key] for r in eval_rows]
        rows = [json.loads(line) for line in (cell / "dataset.jsonl").read_text(encoding="utf-8").splitlines()]
        for upto in sorted({1, max(r["round"] for r in rows)}):
            use = [{"text": r["text"], task.target_key: r["label"],
                    **({"teacher_confidence": r["teacher_confidence"]} if r.get("teacher_confidence") is not None else {})}
                   for r in rows if r["round"] <= upto]
            entry = {"cell": draw, "rounds": upto, "rows": len(use)}
            for mode in MODES:
                fitted, record = fit_recorded(student, use, task, mode, 0)
                entry[mode] = round(float(f1_score(gold, fitted.predict(texts), average="macro")), 4)
                if mode == "auto":
                    entry["auto_chose"] = record.get("auto_chose")
                    estimate = record.get("teacher_right_estimate")
                    entry["lowest_estimate"] = min(estimate.values()) if estimate else None
            fitted = posterior_weighted(student, use, task, 0)
            entry["posterior_weights"] = round(float(f1_score(gold, fitted.predict(texts), average="macro")), 4)
            out.append(entry)
            print(json.dumps(entry), file=sys.stderr, flush=True)
    return out


def auto_below(entry: dict, line: float) -> float:
    """What "auto" with AUTO_FUSE_BELOW = line would have scored on this replay."""
    low = entry.get("lowest_estimate")
    return entry["fuse"] if low is not None and low < line else entry["confidence"]


def render(result: dict) -> str:
    import statistics

    replays = result["replays"]
    lines = [f"# `--noise` modes replayed on the texts of `{result['work_dir']}`", "",
             f"Machine: {result['machine']}; {result['date']}; commit {result['commit']}.", "",
             f"Command (from the project root): `.venv/bin/python {result['command']}`", "",
             f"Each finished `{result['strategy']}` cell's seeds plus the texts it accepted up to round 1, and up to its "
             f"last round, trained into `{result['student']}` once per mode through `evokd.noise.fit_recorded`; "
             "macro-F1 on the cell's eval rows. The texts are the same across a row, so the differences are the "
             "mode's alone. \"posterior\" is not a mode: the teacher's own labels weighted by the fusion's "
             "posterior of each (the script's docstring); \"lowest\" is EM's lowest per-label estimate of how "
             "often the teacher is right, which auto compares with its line.", "",
             "| cell | up to round | rows | lowest | confidence | fuse | auto (chose) | posterior | fuse − conf. | "
             "auto − conf. | posterior − conf. | posterior − auto |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in replays:
        low = "–" if e.get("lowest_estimate") is None else f"{e['lowest_estimate']:.2f}"
        lines.append(f"| {e['cell']} | {e['rounds']} | {e['rows']} | {low} | {e['confidence']:.3f} | {e['fuse']:.3f} | "
                     f"{e['auto']:.3f} ({e['auto_chose']}) | {e['posterior_weights']:.3f} | "
                     f"{100 * (e['fuse'] - e['confidence']):+.1f} | {100 * (e['auto'] - e['confidence']):+.1f} | "
                     f"{100 * (e['posterior_weights'] - e['confidence']):+.1f} | "
                     f"{100 * (e['posterior_weights'] - e['auto']):+.1f} |")
    lines += ["", "\"auto\" with other lines (AUTO_FUSE_BELOW): fuse where the lowest estimate is below the line, "
              "else confidence; the mean over the replays above of the difference from `confidence` and from "
              "the line in use, in macro-F1 points.", "",
              "| line | replays fused | − confidence (mean ± sd) | − auto as run (mean ± sd) |", "|---|---|---|---|"]
    def spread(xs: list[float]) -> float:
        return statistics.stdev(xs) if len(xs) > 1 else 0.0

    for line in AUTO_LINES:
        to_conf = [100 * (auto_below(e, line) - e["confidence"]) for e in replays]
        to_auto = [100 * (auto_below(e, line) - e["auto"]) for e in replays]
        fused = sum(e.get("lowest_estimate") is not None and e["lowest_estimate"] < line for e in replays)
        lines.append(f"| {line} | {fused} of {len(replays)} | {statistics.mean(to_conf):+.1f} ± {spread(to_conf):.1f} | "
                     f"{statistics.mean(to_auto):+.1f} ± {spread(to_auto):.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="an `evokd bench` work dir (runs/bench/NAME)")
    parser.add_argument("--out", type=Path, required=True, help="the results .json (its .md twin is written beside it)")
    parser.add_argument("--strategy", default="evokd")
    parser.add_argument("--student", default="minilm")
    args = parser.parse_args()
    from distill_students import result_header, write_result

    header = result_header("noise_replay", "noise_replay.py")
    header["command"] = header["command"].replace("noise_replay.py", "noise_replay.py --data-dir $EVOKD_DATA", 1)
    result = {**header, "work_dir": args.work_dir.as_posix(), "strategy": args.strategy, "student": args.student,
              "replays": replay(args.work_dir, args.strategy, args.student)}
    write_result(args.out, result, render)


if __name__ == "__main__":
    main()
