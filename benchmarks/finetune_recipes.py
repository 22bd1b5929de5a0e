"""Fine-tuning recipes of the minilm-tuned student on gold sst2 texts: does another epoch count, learning
rate, batch size or training on every text (no held-out slice, no early stopping) beat the default?

    .venv/bin/python benchmarks/finetune_recipes.py --data-dir $EVOKD_DATA [--draws 3,1]

The rows and test texts of benchmarks/students_teacher.py's gold part (512 random sst2 train texts of 6+
words, random seed = the draw; 600 sst2 test texts, random seed 0); the default recipe's and the frozen
head's accuracies are read from that part's cache (runs/bench-cache/students-teacher/gold.json), so run
it first. One torch thread per fit. Each finished fit is cached in runs/bench-cache/finetune-recipes.jsonl
(a re-run resumes); writes benchmarks/finetune_recipes.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
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
GOLD_CACHE = ROOT / "runs" / "bench-cache" / "students-teacher" / "gold.json"
RECIPES = {  # the minilm-tuned defaults: epochs 4, learning rate 5e-5, batches of 16, 15% held out, best epoch kept
    "epochs 8": {"epochs": 8},
    "learning rate 1e-4": {"learning_rate": 1e-4},
    "no held-out slice, 3 epochs (last kept)": {"held_out_fraction": 0, "epochs": 3},
    "batches of 8": {"fine_tune_batch_size": 8},
}


def rows(split: str) -> list[dict]:
    return [json.loads(line) for line in datadir.split_file(DATA / "sst2", split).read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", default="3,1")
    args = parser.parse_args()
    from evokd.bench.aggregate import machine
    from evokd.students import make_student
    from evokd.task import load_task

    task = load_task(ROOT / "datasets" / "sst2" / "task.yaml")
    seen = {r["text"] for r in task.seed_rows()}
    pool = [r for r in rows("train") if len(r["text"].split()) >= 6 and r["text"] not in seen]
    test = random.Random(0).sample(rows("test"), 600)
    done = {(r["draw"], r["config"]): r for r in map(json.loads, CACHE.read_text().splitlines())} if CACHE.is_file() else {}
    draws = [int(d) for d in args.draws.split(",")]
    for draw in draws:
        train = random.Random(draw).sample(pool, 512)
        for name, params in RECIPES.items():
            if (draw, name) in done:
                continue
            start = time.time()
            student = make_student("minilm-tuned", n_threads=1, **params).fit_task(
                [r["text"] for r in train], [r["label"] for r in train], task)
            pred = student.predict([r["text"] for r in test])
            record = {"draw": draw, "config": name, "acc": sum(p == r["label"] for p, r in zip(pred, test)) / len(test),
                      "s": round(time.time() - start), "best_epoch": student.fine_tuning_["best_epoch"],
                      "held": student.fine_tuning_["held_out"]}
            print(record, file=sys.stderr, flush=True)
            CACHE.parent.mkdir(parents=True, exist_ok=True)
            with CACHE.open("a") as f:
                f.write(json.dumps(record) + "\n")
            done[(draw, name)] = record
    gold = json.loads(GOLD_CACHE.read_text())
    base = {d: {k: gold[f"gold/sst2/{d}/512/600/{k}"]["accuracy"] for k in ("minilm", "minilm-tuned")} for d in draws}
    table = {"frozen minilm head": [base[d]["minilm"] for d in draws],
             "minilm-tuned, default recipe": [base[d]["minilm-tuned"] for d in draws],
             **{name: [done[(d, name)]["acc"] for d in draws] for name in RECIPES}}
    m = machine()
    result = {"command": "python benchmarks/finetune_recipes.py --data-dir $EVOKD_DATA " + " ".join(sys.argv[1:]),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{m['cpu']}, {m['cores']} cores; Python {m['python']}", "draws": draws,
              "accuracy": table, "fits": [done[(d, n)] for d in draws for n in RECIPES]}
    (HERE / "finetune_recipes.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# minilm-tuned: fine-tuning recipes on 512 gold sst2 texts", "",
             "Made by `benchmarks/finetune_recipes.py`. Same train and test rows as the gold part of "
             "`benchmarks/students.md`; accuracy on 600 sst2 test texts per draw (random seed of the 512 train texts), "
             "and the difference from the frozen head, in points. The first two rows are that part's cells.", "",
             "| recipe | " + " | ".join(f"draw {d}" for d in draws) + " | mean | mean − frozen |",
             "|---|" + "---|" * (len(draws) + 2)]
    frozen = statistics.mean(table["frozen minilm head"])
    for name, values in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values)
                     + f" | {statistics.mean(values):.3f} | {100 * (statistics.mean(values) - frozen):+.1f} |")
    lines += ["", f"Machine: {result['machine']}; 1 torch thread per fit, other jobs sharing the machine. "
                  f"{result['date']}: `{result['command']}`", ""]
    (HERE / "finetune_recipes.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
