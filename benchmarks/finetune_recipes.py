"""Fine-tuning recipes of the minilm-tuned student on gold sst2 texts: does another epoch count, learning
rate, batch size or training on every text (no held-out slice, no early stopping) beat the default?

    .venv/bin/python benchmarks/finetune_recipes.py --data-dir $EVOKD_DATA [--draws 3,1,2] [--recipe "epochs 8" ...]

The rows and test texts of benchmarks/students_teacher.py's gold part (512 random sst2 train texts of 6+
words, random seed = the draw; 600 sst2 test texts, random seed 0). The frozen minilm head and the
default recipe are fitted here too (rows BASELINES), on the same rows. `--recipe NAME` (repeatable; a
baseline's name too) fits only those (default: the baselines and every recipe). One torch thread per fit.
Each finished fit is cached in runs/bench-cache/finetune-recipes.jsonl (a re-run resumes; processes
fitting different recipes may share it); a missing cache starts from the fits in the committed
benchmarks/finetune_recipes.json, so a re-run adds recipes without re-fitting the old ones. Writes
benchmarks/finetune_recipes.json and .md with every recipe fitted on all the draws.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import shlex
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from evokd import datadir  # noqa: E402

DATA = datadir.for_script(__file__)
CACHE = ROOT / "runs" / "bench-cache" / "finetune-recipes.jsonl"
RESULTS = HERE / "finetune_recipes.json"
# minilm-tuned's recipe until 2026-12-07, which every recipe below changes: epochs 4, learning rate 5e-5, batches
# of 16, 15% held out, the best epoch kept. Its recipe since is "no held-out slice, 20 epochs at 2e-5" on these
# 512 texts (at least 640 optimizer steps: `MiniLMTunedStudent.recipe`).
OLD_DEFAULT = {"epochs": 4, "learning_rate": 5e-5, "held_out_fraction": 0.15, "min_steps": 0}
BASELINES = {"frozen minilm head": ("minilm", {}), "minilm-tuned, the default until 2026-12-07": ("minilm-tuned", OLD_DEFAULT)}
RECIPES = {name: {**OLD_DEFAULT, **changes} for name, changes in {
    "epochs 8": {"epochs": 8},
    "learning rate 1e-4": {"learning_rate": 1e-4},
    "no held-out slice, 3 epochs (last kept)": {"held_out_fraction": 0, "epochs": 3},
    "batches of 8": {"fine_tune_batch_size": 8},
    # Mosbach et al. (2021): few-sample fine-tuning is unstable when it takes too few steps; train longer
    "no held-out slice, 10 epochs (last kept)": {"held_out_fraction": 0, "epochs": 10},
    "no held-out slice, 20 epochs at 2e-5 (last kept)": {"held_out_fraction": 0, "epochs": 20, "learning_rate": 2e-5},
}.items()}


def rows(split: str) -> list[dict]:
    return [json.loads(line) for line in datadir.split_file(DATA / "sst2", split).read_text().splitlines() if line.strip()]


def cached_fits() -> dict[tuple[int, str], dict]:
    """Finished fits by (draw, recipe), from the cache; a missing cache starts as the committed results' fits."""
    if not CACHE.is_file() and RESULTS.is_file():
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_text("".join(json.dumps(r) + "\n" for r in json.loads(RESULTS.read_text())["fits"]))
    if not CACHE.is_file():
        return {}
    return {(r["draw"], r["config"]): r for r in map(json.loads, CACHE.read_text().splitlines()) if r}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", default="3,1,2")
    parser.add_argument("--recipe", action="append", default=None, help="a recipe's name; repeatable (default: all)")
    args = parser.parse_args()
    from evokd.bench.aggregate import machine
    from evokd.students import make_student
    from evokd.task import load_task

    every = {**BASELINES, **{name: ("minilm-tuned", params) for name, params in RECIPES.items()}}
    unknown = [n for n in args.recipe or () if n not in every]
    if unknown:
        parser.error(f"unknown recipe {unknown[0]!r}; expected one of: {'; '.join(every)}")
    runs = {name: every[name] for name in args.recipe or every}
    task = load_task(ROOT / "datasets" / "sst2" / "task.yaml")
    seen = {r["text"] for r in task.seed_rows()}
    pool = [r for r in rows("train") if len(r["text"].split()) >= 6 and r["text"] not in seen]
    test = random.Random(0).sample(rows("test"), 600)
    done = cached_fits()
    draws = [int(d) for d in args.draws.split(",")]
    for draw in draws:
        train = random.Random(draw).sample(pool, 512)
        for name, (student_name, params) in runs.items():
            if (draw, name) in done:
                continue
            start = time.time()
            student = make_student(student_name, n_threads=1, **params).fit_task(
                [r["text"] for r in train], [r["label"] for r in train], task)
            pred = student.predict([r["text"] for r in test])
            tuning = getattr(student, "fine_tuning_", None) or {}
            record = {"draw": draw, "config": name, "acc": sum(p == r["label"] for p, r in zip(pred, test)) / len(test),
                      "s": round(time.time() - start), "best_epoch": tuning.get("best_epoch"),
                      "held": tuning.get("held_out")}
            print(record, file=sys.stderr, flush=True)
            CACHE.parent.mkdir(parents=True, exist_ok=True)
            with CACHE.open("a") as f:
                f.write(json.dumps(record) + "\n")
            done[(draw, name)] = record
    done.update(cached_fits())  # what a process beside this one finished meanwhile
    names = [n for n in every if all((d, n) in done for d in draws)]
    if "frozen minilm head" not in names:
        sys.exit(f"wrote the fits to {CACHE}; the results need the frozen minilm head on draws {args.draws} too")
    table = {name: [done[(d, name)]["acc"] for d in draws] for name in names}
    m = machine()
    this_run = {"command": "python benchmarks/finetune_recipes.py --data-dir $EVOKD_DATA "
                           + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "machine": f"{m['cpu']}, {m['cores']} cores; Python {m['python']}"}
    earlier = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    result = {**this_run, "runs": earlier.get("runs", [{k: earlier[k] for k in this_run}] if earlier else []) + [this_run],
              "draws": draws, "accuracy": table, "fits": [done[(d, n)] for d in draws for n in names]}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# minilm-tuned: fine-tuning recipes on 512 gold sst2 texts", "",
             "Made by `benchmarks/finetune_recipes.py`. Same train and test rows as the gold part of "
             "`benchmarks/students.md`; accuracy on 600 sst2 test texts per draw (random seed of the 512 train texts), "
             "and the difference from the frozen head, in points. Each recipe changes minilm-tuned's recipe until "
             "2026-12-07 (4 epochs at 5e-5, batches of 16, the best epoch on a 15% held-out slice kept). Its recipe "
             "since is the last row's on these texts: 2e-5, no held-out slice, at least 640 optimizer steps (20 "
             "epochs of 512 texts), chosen here and checked on the teacher-labeled rows of `benchmarks/students.md`.",
             "",
             "| recipe | " + " | ".join(f"draw {d}" for d in draws) + " | mean | mean − frozen |",
             "|---|" + "---|" * (len(draws) + 2)]
    frozen = statistics.mean(table["frozen minilm head"])
    for name, values in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values)
                     + f" | {statistics.mean(values):.3f} | {100 * (statistics.mean(values) - frozen):+.1f} |")
    lines += ["", "1 torch thread per fit, other jobs sharing the machine. The runs that fitted these rows "
                  "(each fit is cached, so a later run adds recipes without re-fitting the earlier ones; the runs before "
                  "2026-12-07 named the first minilm-tuned row \"minilm-tuned, default recipe\"):", ""]
    lines += [f"- {r['date']}, {r['machine']}: `{r['command']}`" for r in result["runs"]] + [""]
    (HERE / "finetune_recipes.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
