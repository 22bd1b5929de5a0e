"""How strongly should the encoder students' logistic-regression head be regularised? C swept on the data
of finished bench cells, with the real students (`make_student(NAME, C=...)`, the cell's `--noise`).

    .venv/bin/python benchmarks/head_c.py --work-dir runs/bench/local-teacher-30min \
        --work-dir runs/bench/local-teacher-30min-mpnet --out benchmarks/results/local-teacher-30min-head-c.json

For every finished cell that added texts, each student is trained at each C on three sets of rows and
scored (macro-F1) on the bench's test rows of the cell's draw:
- "final": everything the cell accepted, as `evokd distill RUN --student NAME --param C=...` would;
- "seed-only" (from the default loop's cells, once per draw): the draw's seeds alone, with label anchors;
- "gold labels" (pool cells only): the same accepted texts with the train split's own labels in place of
  the teacher's (weight 1), which says how much of the gap to the teacher is label noise and how much the
  frozen encoder and head.
The students default to C = 10 (evokd.students.minilm.MiniLMStudent). These rows were never used to pick
it; like any sweep on test rows, a C that wins here needs other draws before it becomes a default.
Vectors are memoised per text for the whole run and kept on disk (--vector-cache), so a re-run only refits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from distill_students import result_header, write_result  # noqa: E402

from evokd.bench.config import CELL_FILE  # noqa: E402
from evokd.bench.finished import read_cell  # noqa: E402

C_VALUES = (0.25, 0.5, 1.0, 2.0, 4.0, 10.0)
DEFAULT_C = 10.0


def preload(student: str, texts: list[str], cache: Path) -> None:
    """Put this text list's frozen vectors into the students' memo, from `cache` or encoded once and saved there."""
    import numpy as np

    from evokd.students.encoders import MINILM, MPNET
    from evokd.students.minilm import frozen_vectors, remember_frozen_vectors

    spec = {"minilm": MINILM, "mpnet": MPNET}[student]
    digest = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:16]
    path = cache / f"{student}-{len(texts)}-{digest}.npy"
    if path.is_file():
        remember_frozen_vectors(texts, np.load(path), spec)
    else:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, frozen_vectors(texts, 32, spec))


def sweep(cell_dir: Path, students: list[str], cache: Path) -> dict:
    """One cell: {row set: {student: {C: macro-F1 on the test rows}}}."""
    from evokd.noise import training_rows, training_weights
    from evokd.students import fit_student, make_student

    finished = read_cell(cell_dir)
    cell, task, accepted = finished.record, finished.task, finished.accepted
    key, rules = task.target_key, task.rules
    test = task.eval_rows()
    sets = {"final": accepted}
    if cell["strategy"] == "evokd":
        sets["seed-only"] = [s for s in accepted if s["source"] == "seed"]
    if cell["strategy"].startswith("pool-"):
        gold = finished.gold_pool()
        sets["gold labels"] = [{**s, key: gold.get(s["text"], s[key]), "teacher_confidence": None} for s in accepted]
    out: dict = {}
    for student_name in students:
        for texts in ([s["text"] for s in accepted], [r["text"] for r in test], list(task.label_descriptions.values())):
            preload(student_name, texts, cache)
        for name, rows in sets.items():
            rows = training_rows(rows, task, finished.noise, finished.seed)[0]  # "fuse" trains on other labels
            for c in C_VALUES:
                student = make_student(student_name, C=c)
                weights, _ = training_weights(student, rows, task, finished.noise, finished.seed)
                fitted = fit_student(student, [r["text"] for r in rows], [r[key] for r in rows], task, sample_weight=weights)
                report = rules.report([r[key] for r in test], list(fitted.predict([r["text"] for r in test])), task.label_names)
                out.setdefault(name, {}).setdefault(student_name, {})[str(c)] = rules.scores(report)["macro_f1"]
    return {"dataset": cell["dataset"], "seed": cell["seed"], "row": finished.row,
            "loop_student": cell["student"], "added": sum(s["source"] != "seed" for s in accepted), "scores": out}


def summarize(cells: dict) -> dict:
    """Per dataset, row set and student: the seeds, the mean at C = 10 and each C's paired difference from it.
    The seeds alone make one row per draw, however many benches drew it."""
    out: dict = {}
    seen_draws: set = set()
    for key, cell in sorted(cells.items()):
        for name, by_student in cell["scores"].items():
            if name == "seed-only":
                if (cell["dataset"], cell["seed"]) in seen_draws:
                    continue
                seen_draws.add((cell["dataset"], cell["seed"]))
                row = "seed-only"
            else:
                row = f"{cell['row']}{', gold labels' if name == 'gold labels' else ''} (loop: {cell['loop_student']})"
            for student, scores in by_student.items():
                entry = out.setdefault(cell["dataset"], {}).setdefault(row, {}).setdefault(
                    student, {"seeds": [], "default": [], "diff_points": {str(c): [] for c in C_VALUES if c != DEFAULT_C}})
                entry["seeds"].append(cell["seed"])
                entry["default"].append(scores[str(DEFAULT_C)])
                for c in entry["diff_points"]:
                    entry["diff_points"][c].append(100 * (scores[c] - scores[str(DEFAULT_C)]))
    return out


def render(result: dict) -> str:
    def pm(values: list[float]) -> str:
        sd = statistics.pstdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):+.1f} ± {sd:.1f}"

    others = [str(c) for c in C_VALUES if c != DEFAULT_C]
    lines = [f"# The head's C on the bench cells' data: {', '.join(result['benches'])}", "",
             f"- Machine: {result['machine']}. Date: {result['date']}. Commit `{result['commit']}`.",
             f"- Command: `{result['command']}`",
             f"- Cells swept: {len(result['cells'])}"
             + (f"; **partial**, not swept yet: {', '.join(f'`{c}`' for c in result['unswept'])}" if result.get("unswept") else "")
             + ".", "", __doc__.split("\n\n", 2)[2].strip(), "",
             "Macro-F1 at C = 10 (mean ± sd over the seeds), then each other C's paired difference from it in points. "
             "\"loop:\" names the student the cell's loop trained (it chose the texts).", ""]
    for dataset, rows in result["summary"].items():
        lines += [f"## {dataset}", "", "| rows | student | seeds | C = 10 | " + " | ".join(f"C = {c}" for c in others) + " |",
                  "|---|---|---|---|" + "---|" * len(others)]
        for row, by_student in rows.items():
            for student, e in by_student.items():
                sd = statistics.pstdev(e["default"]) if len(e["default"]) > 1 else 0.0
                lines.append(f"| {row} | {student} | {', '.join(map(str, e['seeds']))} | "
                             f"{statistics.fmean(e['default']):.4f} ± {sd:.4f} | "
                             + " | ".join(pm(e["diff_points"][c]) for c in others) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, action="append", required=True, help="an `evokd bench` work dir (repeatable)")
    parser.add_argument("--students", nargs="+", default=["minilm", "mpnet"])
    parser.add_argument("--out", type=Path, required=True, help="the results' JSON path (the Markdown goes beside it)")
    parser.add_argument("--render-only", action="store_true",
                        help="sweep nothing: write the results of the cells swept so far and list the others")
    parser.add_argument("--vector-cache", type=Path, default=ROOT / "runs" / "head-c-vectors",
                        help="where each text list's frozen vectors are kept between runs")
    args = parser.parse_args()
    old = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    cells = old.get("cells", {}) if old.get("students") == args.students else {}
    todo = []
    for work_dir in args.work_dir:
        for cell_file in sorted(work_dir.glob(f"cells/*/*/*/{CELL_FILE}")):
            cell = json.loads(cell_file.read_text(encoding="utf-8"))
            key = f"{work_dir.resolve().name}/{cell_file.parent.relative_to(work_dir)}"
            if key not in cells and cell["strategy"] != "seed-only":
                todo.append((key, cell_file.parent))

    def write() -> None:
        result = {**result_header(", ".join(w.resolve().name for w in args.work_dir), "head_c.py"),
                  "benches": [w.resolve().name for w in args.work_dir], "students": args.students,
                  "c_values": list(C_VALUES), "cells": cells, "unswept": [key for key, _ in todo if key not in cells]}
        result["summary"] = summarize(cells)
        write_result(args.out, result, render)

    for key, cell_dir in [] if args.render_only else todo:
        cells[key] = sweep(cell_dir, args.students, args.vector_cache)
        print(key, {s: round(v[str(DEFAULT_C)], 4) for s, v in cells[key]["scores"]["final"].items()}, flush=True)
        write()
    write()

if __name__ == "__main__":
    main()
