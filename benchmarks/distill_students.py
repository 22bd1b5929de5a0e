"""The same data, shipped as other students: what `evokd distill --student NAME` makes of each finished
cell of an `evokd bench` work dir.

    .venv/bin/python benchmarks/distill_students.py --work-dir runs/bench/local-teacher-30min [--students minilm mpnet] [--jobs 2]

Why: a bench cell retrains its loop student (the config's `students`) every round, and its table
scores that student. A user ships whichever student distils the accepted data best, and frozen minilm
tops out near 77% on sst2 even on 1,000 teacher-labeled texts, where mpnet reaches 87% and the teacher
91% (benchmarks/students.md). For each finished cell that added samples, each student is trained on
its draw's seeds alone (with label anchors) and on everything the cell accepted (weighed with the
cell's `--noise`, as `evokd distill RUN` does), and scored on the draw's eval rows. The teacher row is
the bench's own (`teacher_row: true`), where it ran.

Writes benchmarks/results/NAME-students.md and .json beside the bench's NAME.md, again after every cell.
Each cell's scores are kept in the JSON with the cell's final train size, so a re-run (after more cells
finish, or after an interruption) trains only the cells not scored yet.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from evokd.bench.config import CELL_FILE, TEACHER_DIR  # noqa: E402
from evokd.bench.executors import _worker_init  # noqa: E402
from evokd.bench.finished import read_cell  # noqa: E402

SCORE = "macro_f1"


def score_cell(cell_dir: Path, students: list[str], draws: dict) -> tuple[str, dict, dict]:
    """(the cell's draw, its students' seed-only scores fitted here, each student on the cell's accepted
    rows). A student whose seed-only score `draws` holds for the draw is not fitted on the seeds again."""
    from evokd.noise import fit_on_rows
    from evokd.students import CANDIDATES

    cell = read_cell(cell_dir)
    task, accepted, draw = cell.task, cell.accepted, cell.draw
    rows = task.eval_rows()
    texts, gold = [r["text"] for r in rows], [r[task.target_key] for r in rows]
    seeds = [s for s in accepted if s["source"] == "seed"]
    out = {"dataset": cell.record["dataset"], "seed": cell.record["seed"], "row": cell.row,
           "train_size": len(accepted), "added": len(accepted) - len(seeds), "loop_student": cell.record["student"],
           "students": {}}
    seed_only: dict = {}
    for student in students:
        if student not in CANDIDATES[task.kind]:
            continue
        for key, train in (("seed_only", seeds), ("final", accepted)):
            if key == "seed_only" and student in draws.get(draw, {}):
                continue
            started = time.perf_counter()
            fitted = fit_on_rows(student, train, task, cell.noise, cell.seed)
            value = task.rules.scores(task.rules.report(gold, list(fitted.predict(texts)), task.label_names))[SCORE]
            if key == "seed_only":
                seed_only[student] = value
            else:
                out["students"][student] = value
            print(f"{draw} {out['row']} {student} {key}: {value:.4f} ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)
    return draw, seed_only, out


def _mean_sd(values: list[float]) -> str:
    sd = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {sd:.4f}"


def summarize(result: dict) -> dict:
    """Per dataset, row and student: the seeds, mean final and seed-only scores and the paired gain."""
    out: dict = {}
    for cell in result["cells"].values():
        draw = f"{cell['dataset']}-s{cell['seed']}"
        for student, final in cell["students"].items():
            base = result["draws"].get(draw, {}).get(student)
            if base is None:
                continue
            entry = out.setdefault(cell["dataset"], {}).setdefault(cell["row"], {}).setdefault(
                student, {"seeds": [], "final": [], "seed_only": [], "gain_points": [], "added": []})
            entry["seeds"].append(cell["seed"])
            entry["final"].append(final)
            entry["seed_only"].append(base)
            entry["gain_points"].append(100 * (final - base))
            entry["added"].append(cell["added"])
    return out


def render(result: dict) -> str:
    students = result["students"]
    lines = [f"# The same data, other students: `{result['bench']}`", "",
             f"- Machine: {result['machine']}. Date: {result['date']}. Commit `{result['commit']}`.",
             f"- Command: `{result['command']}`",
             "- Each finished cell of the bench that added samples: every student trained on the draw's seeds alone "
             "(label anchors) and on everything the cell accepted (weighed with the cell's `--noise`, as "
             "`evokd distill RUN --student NAME` does), scored on the draw's eval rows. Macro-F1, mean ± sd over "
             "the random seeds; Δ is the paired gain over the same student's seed-only score, in points.", ""]
    for dataset, rows in result["summary"].items():
        lines += [f"## {dataset}", "",
                  "| row | seeds | added | " + " | ".join(f"{s}: seed-only | {s}: final | {s}: Δ" for s in students) + " |",
                  "|---|---|---|" + "---|" * (3 * len(students))]
        for row, by_student in rows.items():
            first = next(iter(by_student.values()))
            cells = []
            for s in students:
                e = by_student.get(s)
                cells += ([_mean_sd(e["seed_only"]), _mean_sd(e["final"]),
                           f"{statistics.fmean(e['gain_points']):+.2f}"
                           + (f" ± {statistics.pstdev(e['gain_points']):.2f}" if len(e["gain_points"]) > 1 else "")]
                          if e else ["–", "–", "–"])
            lines.append(f"| {row} | {', '.join(map(str, first['seeds']))} | {statistics.fmean(first['added']):.0f} | "
                         + " | ".join(cells) + " |")
        lines.append("")
        teacher = [t for t in result["teacher"] if t["dataset"] == dataset]
        if teacher:
            lines += [f"The teacher itself, labeling the same eval rows (the bench's teacher row, seeds "
                      f"{', '.join(str(t['seed']) for t in teacher)}): {_mean_sd([t[SCORE] for t in teacher])}.", ""]
    return "\n".join(lines) + "\n"


def result_header(bench: str, script: str) -> dict:
    """What every results file of these scripts starts with: the bench, machine, date, commit and command."""
    from evokd.bench.aggregate import machine

    m = machine()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"bench": bench, "machine": f"{m['cpu']}, {m['cores']} cores; Python {m['python']}",
            "date": dt.date.today().isoformat(), "commit": commit,
            "command": f"benchmarks/{script} " + " ".join(sys.argv[1:])}


def write_result(path: Path, result: dict, render) -> None:
    """PATH (.json) and its Markdown twin, rendered by `render`; prints the Markdown's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(render(result), encoding="utf-8")
    print(path.with_suffix(".md"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="an `evokd bench` work dir (runs/bench/NAME)")
    parser.add_argument("--students", nargs="+", default=["minilm", "mpnet"])
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    parser.add_argument("--jobs", type=int, default=1, help="cells scored at a time, each in its own process with "
                        "one torch thread (default 1: one at a time, with torch's default threads)")
    args = parser.parse_args()
    name = args.work_dir.resolve().name
    path = args.results_dir / f"{name}-students.json"
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    same_students = old.get("students") == args.students
    cells = old.get("cells", {}) if same_students else {}
    draws = old.get("draws", {}) if same_students else {}
    teacher = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((args.work_dir / TEACHER_DIR).glob("*.json"))]

    def save() -> None:  # after every cell: mpnet-tuned takes 20-30 minutes of one thread a cell, and a re-run resumes
        result = {**result_header(name, "distill_students.py"), "students": args.students, "cells": cells,
                  "draws": draws, "teacher": teacher}
        result["summary"] = summarize(result)
        write_result(path, result, render)

    todo = []
    for cell_file in sorted(args.work_dir.glob(f"cells/*/*/*/{CELL_FILE}")):
        cell = json.loads(cell_file.read_text(encoding="utf-8"))
        key = str(cell_file.parent.relative_to(args.work_dir))
        if cell["rounds"][-1]["added"] == 0 or cells.get(key, {}).get("train_size") == cell["rounds"][-1]["train_size"]:
            continue  # seed-only (its scores are each draw's seed-only ones), or scored already
        todo.append((key, cell_file.parent))

    def keep(key: str, scored: tuple[str, dict, dict]) -> None:
        draw, seed_only, cells[key] = scored
        draws.setdefault(draw, {}).update(seed_only)
        save()

    if args.jobs <= 1:
        for key, cell_dir in todo:
            keep(key, score_cell(cell_dir, args.students, draws))
    else:  # spawned workers with one torch/BLAS thread each, as `evokd bench --jobs` runs its cells
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init) as pool:
            futures, held = {}, {}  # held: draw -> its cells waiting for the draw's first cell (its seed-only fits)

            def submit(key: str, cell_dir: Path) -> None:
                futures[pool.submit(score_cell, cell_dir, args.students, draws)] = key

            for key, cell_dir in todo:
                draw = cell_dir.parents[1].name  # WORK/cells/DRAW/STUDENT/ROW: read_cell's draw, without its store
                if draw in held:
                    held[draw].append((key, cell_dir))
                else:
                    submit(key, cell_dir)
                    if draw not in draws:  # its seed-only students are fitted by this cell, then known to the rest
                        held[draw] = []
            while futures:
                future = next(as_completed(futures))
                key = futures.pop(future)
                scored = future.result()
                keep(key, scored)
                for later in held.pop(scored[0], []):
                    submit(*later)
    save()


if __name__ == "__main__":
    main()
