"""Which rule should the eval guard keep rounds by? Replayed on finished bench cells (as guard_replay.py
does): the seed-only floor alone, against the floor or the best score so far minus a margin.

    .venv/bin/python benchmarks/guard_rules.py --work-dir runs/bench/local-teacher-30min-mpnet \
        --work-dir runs/bench/local-teacher-30min --out benchmarks/results/local-teacher-30min-guard-rules.json

Each cell's draw gets the validation file guard_replay.py's "any pool rows" draws (GUARD_MIN_EVAL_ROWS
rows of its pool, gold labels, texts the cell never saw). Its rounds are replayed in order with the
loop's student under each rule: a round is kept when the student trained on the kept rounds and it
scores on the validation rows at least the rule's bar, else rolled back; a rolled-back round leaves
the best score where it was. The kept rows' student is then scored on the bench's test rows. The rules
were compared on these test rows, so the margin the guard uses (evokd.loop.guard.GUARD_MARGIN) was
chosen on them: a held-out check is other draws.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from distill_students import result_header, write_result  # noqa: E402
from guard_replay import VALIDATION_SEED  # noqa: E402

from evokd.bench.config import CELL_FILE  # noqa: E402
from evokd.bench.finished import read_cell  # noqa: E402

# rule name -> margin below the best score so far (None: the seed-only floor alone)
RULES = {"floor": None, "best": 0.0, "best-0.01": 0.01, "best-0.02": 0.02, "best-0.03": 0.03}


def replay(cell_dir: Path) -> dict:
    """One cell's seed-only and unguarded test scores, and its guarded test score and kept rounds per rule."""
    from evokd.loop import guard
    from evokd.noise import fit_on_rows

    finished = read_cell(cell_dir)
    cell, task, accepted = finished.record, finished.task, finished.accepted
    rules, key, metric = task.rules, task.target_key, task.rules.selection_metric
    test = task.eval_rows()
    validation = random.Random(VALIDATION_SEED).sample(finished.unseen_pool(), guard.GUARD_MIN_EVAL_ROWS)
    rounds = sorted({s["round"] for s in accepted})
    memo: dict = {}

    def score(kept: set[int], rows: list[dict], name: str) -> float:
        if (frozenset(kept), name) not in memo:
            student = fit_on_rows(cell["student"], [s for s in accepted if s["round"] in kept], task, finished.noise,
                                  finished.seed)
            report = rules.report([r[key] for r in rows], list(student.predict([r["text"] for r in rows])), task.label_names)
            memo[frozenset(kept), name] = rules.scores(report)[metric]
        return memo[frozenset(kept), name]

    out = {"dataset": cell["dataset"], "seed": cell["seed"], "row": finished.row,
           "student": cell["student"], "rounds": len(rounds) - 1, "seed_only": score({0}, test, "test"),
           "unguarded": cell[metric], "rules": {}}
    for name, margin in RULES.items():
        kept = {0}
        floor = best = score(kept, validation, "validation")
        for r in rounds[1:]:
            s = score(kept | {r}, validation, "validation")
            if s >= (floor if margin is None else max(floor, best - margin)):
                kept.add(r)
                best = max(best, s)
        out["rules"][name] = {"guarded": score(kept, test, "test"), "rounds_kept": len(kept) - 1}
    return out


def summarize(cells: dict) -> dict:
    """Per student, dataset and row: the paired gains over seed-only (points), unguarded and per rule."""
    out: dict = {}
    for c in sorted(cells.values(), key=lambda c: (c["student"], c["dataset"], c["row"], c["seed"])):
        e = out.setdefault(f"{c['student']} · {c['dataset']} · {c['row']}", {"seeds": [], "unguarded": [],
                                                                             **{name: [] for name in RULES}})
        e["seeds"].append(c["seed"])
        e["unguarded"].append(100 * (c["unguarded"] - c["seed_only"]))
        for name in RULES:
            e[name].append(100 * (c["rules"][name]["guarded"] - c["seed_only"]))
    return out


def _gain(points: list[float]) -> str:
    sd = f" ± {statistics.pstdev(points):.1f}" if len(points) > 1 else ""
    return f"{statistics.fmean(points):+.1f}{sd} ({', '.join(f'{p:+.1f}' for p in points)})"


def render(result: dict) -> str:
    cells = list(result["cells"].values())
    lines = ["# The eval guard's rule, replayed on the 30-minute bench's cells", "",
             f"- Machine: {result['machine']}. Date: {result['date']}. Commit `{result['commit']}`.",
             f"- Command: `{result['command']}`",
             f"- Each finished cell that added texts, replayed with its loop student under each rule, on {result['validation_n']} "
             "validation rows per draw (its pool, gold labels, texts the cell never saw). **floor**: a round is kept "
             "when its student scores at least the seed-only one (the guard before 2026-12-06). **best**: at least "
             "the best so far. **best-m**: at least the seed-only one and at least the best so far minus m. Macro-F1 "
             "on the bench's test rows; each cell is the paired gain over the draw's seed-only student, in points, "
             "mean ± sd over seeds (per seed in brackets).",
             "- The rules were compared on these test rows, so the margin the guard now uses (0.02) was picked on "
             "them: a held-out check is other draws. A replay, not a rerun: a guarded run's later rounds would aim "
             "at the kept student's mistakes.", "",
             "| student · dataset · row | seeds | unguarded | " + " | ".join(RULES) + " |",
             "|---|---|---|" + "---|" * len(RULES)]
    for row, e in result["summary"].items():
        lines.append(f"| {row} | {', '.join(map(str, e['seeds']))} | {_gain(e['unguarded'])} | "
                     + " | ".join(_gain(e[name]) for name in RULES) + " |")
    worst = {name: min(100 * (c["rules"][name]["guarded"] - c["seed_only"]) for c in cells) for name in RULES}
    mean = {name: statistics.fmean(100 * (c["rules"][name]["guarded"] - c["seed_only"]) for c in cells) for name in RULES}
    lines += ["", f"Over all {len(cells)} cells: " + "; ".join(
        f"**{name}** mean {mean[name]:+.2f}, worst cell {worst[name]:+.1f}" for name in RULES) + " (points over seed-only).", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, action="append", required=True, help="an `evokd bench` work dir (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="the results JSON (its Markdown twin beside it)")
    args = parser.parse_args()
    from evokd.loop.guard import GUARD_MIN_EVAL_ROWS

    cells = {}
    for work_dir in args.work_dir:
        for cell_file in sorted(work_dir.glob(f"cells/*/*/*/{CELL_FILE}")):
            cell = json.loads(cell_file.read_text(encoding="utf-8"))
            if cell["rounds"][-1]["added"] == 0:
                continue  # seed-only
            key = f"{work_dir.resolve().name}/{cell_file.parent.relative_to(work_dir)}"
            cells[key] = replay(cell_file.parent)
            print(key, {name: round(100 * (v["guarded"] - cells[key]["seed_only"]), 1)
                        for name, v in cells[key]["rules"].items()}, flush=True)
    result = {**result_header(", ".join(w.resolve().name for w in args.work_dir), "guard_rules.py"),
              "validation_n": GUARD_MIN_EVAL_ROWS, "rules": RULES, "cells": cells, "summary": summarize(cells)}
    write_result(args.out, result, render)


if __name__ == "__main__":
    main()
