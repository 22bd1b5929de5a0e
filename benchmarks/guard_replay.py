"""The eval guard, replayed on a finished bench: what `evokd generate`'s guard (evokd.loop.guard) would
have shipped from each cell's rounds, had the run had a labeled eval file of its own.

    .venv/bin/python benchmarks/guard_replay.py --work-dir runs/bench/local-teacher-30min

Why a replay: bench cells run with --no-eval-guard, because their eval rows are the bench's test rows
and a guard picking rounds on them would grade itself. Here each cell's draw gets separate labeled
validation files of GUARD_MIN_EVAL_ROWS rows of its pool (the train split, gold labels) that the cell
never saw, drawn two ways (VALIDATIONS): any pool rows, and only the rows of MIN_SEED_WORDS+ words, the
rule the draw's seeds were picked by. The second stands for a user's eval file, which holds texts like
the user's seeds; it matters on sst2, whose train split is mostly phrase fragments (41% of a pool has
under 6 words, against whole test sentences). Its rounds are replayed in order with the loop's student,
once per validation file: a round is kept when the student trained on the kept rounds and it scores on
the validation rows at least the guard's bar (`guard.judge`: the seed-only student's score, or the best
so far minus GUARD_MARGIN where higher), else it is rolled back. The kept
rows' student is then scored on the test rows, beside the cell's own (unguarded) final student and the
draw's seed-only student.

A replay, not a rerun: a guarded run's later rounds would have been aimed at the kept student's
mistakes, so its texts would differ. Writes benchmarks/results/NAME-guard.md and .json.
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

from distill_students import _mean_sd, result_header, write_result  # noqa: E402

from evokd.bench.config import CELL_FILE, MIN_SEED_WORDS  # noqa: E402
from evokd.bench.finished import read_cell  # noqa: E402
from evokd.loop.guard import GUARD_MARGIN  # noqa: E402

VALIDATION_SEED = 7  # draws each cell's validation rows from its pool
# the validation files each cell is replayed with: name -> the fewest words a validation text has. "pool"
# writes the result's top-level keys (guarded, rounds_kept, added_kept), as before there were two.
VALIDATIONS = {"pool": 0, "seed-like": MIN_SEED_WORDS}


def replay_cell(cell_dir: Path) -> dict:
    """The guard replayed on one cell: its seed-only, unguarded and guarded test scores."""
    from evokd.loop import guard
    from evokd.noise import fit_on_rows

    finished = read_cell(cell_dir)
    cell, task, accepted = finished.record, finished.task, finished.accepted
    rules, key = task.rules, task.target_key
    test = task.eval_rows()
    unseen = finished.unseen_pool()
    rounds = sorted({s["round"] for s in accepted})
    metric = rules.selection_metric

    def scored(kept: set[int], rows: list[dict]) -> dict:
        student = fit_on_rows(cell["student"], [s for s in accepted if s["round"] in kept], task, finished.noise,
                              finished.seed)
        return rules.report([r[key] for r in rows], list(student.predict([r["text"] for r in rows])), task.label_names)

    def guarded(min_words: int) -> dict:
        candidates = [r for r in unseen if len(r["text"].split()) >= min_words]
        validation = random.Random(VALIDATION_SEED).sample(candidates, guard.GUARD_MIN_EVAL_ROWS)
        kept, column = {0}, guard.score_column(rules)
        committed = [{"round": 0, column: rules.scores(scored(kept, validation))[metric]}]
        for r in rounds[1:]:
            verdict = guard.judge(rules, scored(kept | {r}, validation), committed)
            if verdict.kept:
                kept.add(r)
            # a rolled-back round's record holds the kept student's score, as the loop commits it
            committed.append({"round": r, column: verdict.score if verdict.kept else committed[-1][column]})
        return {"min_words": min_words, "validation_n": len(validation), "rounds_kept": len(kept) - 1,
                "added_kept": sum(s["round"] in kept and s["round"] > 0 for s in accepted),
                "guarded": rules.scores(scored(kept, test))[metric]}

    by_validation = {name: guarded(min_words) for name, min_words in VALIDATIONS.items()}
    return {"dataset": cell["dataset"], "seed": cell["seed"], "row": finished.row,
            "student": cell["student"], "margin": GUARD_MARGIN, "train_size": len(accepted), "rounds": len(rounds) - 1,
            "added": sum(s["round"] > 0 for s in accepted), **by_validation["pool"],
            "validations": by_validation, "seed_only": rules.scores(scored({0}, test))[metric],
            "unguarded": cell[metric]}


def summarize(cells: dict) -> dict:
    """Per dataset and row: the seeds, scores and paired gains over seed-only, unguarded and guarded with
    each validation file (`by[name]`)."""
    out: dict = {}
    for c in sorted(cells.values(), key=lambda c: (c["dataset"], c["row"], c["seed"])):
        e = out.setdefault(c["dataset"], {}).setdefault(c["row"], {
            **{k: [] for k in ("seeds", "seed_only", "unguarded", "unguarded_gain", "rounds")},
            "by": {name: {"guarded": [], "guarded_gain": [], "rounds_kept": []} for name in VALIDATIONS}})
        e["seeds"].append(c["seed"])
        for k in ("seed_only", "unguarded", "rounds"):
            e[k].append(c[k])
        e["unguarded_gain"].append(100 * (c["unguarded"] - c["seed_only"]))
        for name, v in c["validations"].items():
            e["by"][name]["guarded"].append(v["guarded"])
            e["by"][name]["guarded_gain"].append(100 * (v["guarded"] - c["seed_only"]))
            e["by"][name]["rounds_kept"].append(v["rounds_kept"])
    return out


def _gain(points: list[float]) -> str:
    return (f"{statistics.fmean(points):+.1f}" + (f" ± {statistics.pstdev(points):.1f}" if len(points) > 1 else "")
            + f" ({', '.join(f'{p:+.1f}' for p in points)})")


def render(result: dict) -> str:
    n = result["validation_n"]
    lines = [f"# The eval guard, replayed: `{result['bench']}`", "",
             f"- Machine: {result['machine']}. Date: {result['date']}. Commit `{result['commit']}`.",
             f"- Command: `{result['command']}`",
             "- Each finished cell that added samples, replayed with its loop student: a round is kept when its "
             f"student scores on {n} validation rows (the draw's pool, gold labels, texts the cell never saw) at "
             f"least the seed-only one, and at least the best so far minus {GUARD_MARGIN:g}; else it is rolled back "
             "(`evokd.loop.guard`; `guard_rules.py` compares the rules). Two validation files per draw: **any** "
             f"{n} pool rows, and **seed-like**: {n} pool rows of {VALIDATIONS['seed-like']}+ words, the rule the "
             "draw's seeds were picked by, as a user's eval file holds texts like their seeds (on sst2 41% of the "
             "pool is phrase fragments of under 6 words; the test rows are whole sentences). Macro-F1 on the "
             "bench's test rows; Δ is the paired gain over the draw's seed-only student, in points (per seed in "
             "brackets).",
             "- A replay, not a rerun: a guarded run's later rounds would aim at the kept student's mistakes.", ""]
    for dataset, rows in result["summary"].items():
        lines += [f"## {dataset}", "", "| row | seeds | seed-only | unguarded (bench) | Δ unguarded | Δ guarded, any rows "
                  "| rounds kept | Δ guarded, seed-like rows | rounds kept |", "|---|---|---|---|---|---|---|---|---|"]
        for row, e in rows.items():
            cells = [row, ", ".join(map(str, e["seeds"])), _mean_sd(e["seed_only"]), _mean_sd(e["unguarded"]),
                     _gain(e["unguarded_gain"])]
            for name in ("pool", "seed-like"):
                v = e["by"][name]
                cells += [_gain(v["guarded_gain"]), ", ".join(f"{k} of {r}" for k, r in zip(v["rounds_kept"], e["rounds"]))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="an `evokd bench` work dir (runs/bench/NAME)")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    args = parser.parse_args()
    from evokd.loop.guard import GUARD_MIN_EVAL_ROWS

    name = args.work_dir.resolve().name
    path = args.results_dir / f"{name}-guard.json"
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    cells = old.get("cells", {})
    for cell_file in sorted(args.work_dir.glob(f"cells/*/*/*/{CELL_FILE}")):
        cell = json.loads(cell_file.read_text(encoding="utf-8"))
        key = str(cell_file.parent.relative_to(args.work_dir))
        done = cells.get(key, {})
        if cell["rounds"][-1]["added"] == 0 or (done.get("train_size") == cell["rounds"][-1]["train_size"]
                                               and set(done.get("validations", ())) == set(VALIDATIONS)
                                               and done.get("margin") == GUARD_MARGIN):
            continue  # seed-only, or replayed already with every validation file and today's guard
        cells[key] = replay_cell(cell_file.parent)
        print(key, {k: cells[key][k] for k in ("seed_only", "unguarded", "rounds")},
              {name: (round(v["guarded"], 4), v["rounds_kept"]) for name, v in cells[key]["validations"].items()},
              flush=True)
    result = {**result_header(name, "guard_replay.py"), "validation_n": GUARD_MIN_EVAL_ROWS, "cells": cells,
              "summary": summarize(cells)}
    write_result(path, result, render)


if __name__ == "__main__":
    main()
