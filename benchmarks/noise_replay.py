"""A bench cell's own accepted texts trained again with each `--noise` mode: which mode, not which texts.

    .venv/bin/python benchmarks/noise_replay.py --data-dir $EVOKD_DATA --work-dir runs/bench/NAME \
        --out benchmarks/results/NAME-noise-replay.json [--strategy evokd] [--student minilm]

Two cells of one loop that ran with different `--noise` modes also wrote different texts (the teacher
samples afresh), so their difference mixes the mode with run-to-run spread. This takes each finished
cell of `--strategy` in an `evokd bench` work dir, and for its first round and its last trains the
cell's student on the seeds plus the texts accepted up to that round once per mode (`confidence`,
`fuse`, `auto`) through `evokd.noise.fit_recorded`, as the loop did, then scores macro-F1 on the
cell's eval rows (the bench's test rows). Nothing calls the teacher.
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
            out.append(entry)
            print(json.dumps(entry), file=sys.stderr, flush=True)
    return out


def render(result: dict) -> str:
    lines = [f"# `--noise` modes replayed on the texts of `{result['work_dir']}`", "",
             f"Machine: {result['machine']}; {result['date']}; commit {result['commit']}.", "",
             f"Command (from the project root): `.venv/bin/python {result['command']}`", "",
             f"Each finished `{result['strategy']}` cell's seeds plus the texts it accepted up to round 1, and up to its "
             f"last round, trained into `{result['student']}` once per mode through `evokd.noise.fit_recorded`; "
             "macro-F1 on the cell's eval rows. The texts are the same across a row, so the differences are the "
             "mode's alone.", "",
             "| cell | up to round | rows | confidence | fuse | auto (chose) | fuse − confidence | auto − confidence |",
             "|---|---|---|---|---|---|---|---|"]
    for e in result["replays"]:
        lines.append(f"| {e['cell']} | {e['rounds']} | {e['rows']} | {e['confidence']:.3f} | {e['fuse']:.3f} | "
                     f"{e['auto']:.3f} ({e['auto_chose']}) | {100 * (e['fuse'] - e['confidence']):+.1f} | "
                     f"{100 * (e['auto'] - e['confidence']):+.1f} |")
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
