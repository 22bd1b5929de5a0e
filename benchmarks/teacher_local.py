"""Benchmark the embedded local teacher: speed, valid-output rate and labeling accuracy.

    .venv/bin/python benchmarks/teacher_local.py [--n 200]

Labels N real sst2 dev sentences and N real ag_news test sentences with the Teacher's labeling
step exactly as the loop calls it (seed demonstrations in the prompt), once zero-shot (no
demonstrations) for comparison, and with a second vote (keep only agreeing labels). Then runs
one full round of the loop on sst2 and trec to time each step. Writes teacher_local.md/.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import evokd
from evokd.loop import LoopConfig, RoundRunner
from evokd.task import load_task
from evokd.teacher.local import default_threads, make_local_lm, teacher_info
from evokd.teacher.teacher import Teacher

ROOT = Path(__file__).resolve().parents[1]
from evokd import datadir  # noqa: E402  (the benchmark data folder: --data-dir or EVOKD_DATA)

DATA = datadir.for_script(__file__)
OUT = Path(__file__).resolve().parent


def sample_rows(path: Path, n: int, seed: int = 7) -> list[dict]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    return random.Random(seed).sample(rows, n)


def label_accuracy(task, lm, rows, demonstrations, votes: int) -> dict:
    teacher = Teacher(task, lm, demonstrations=demonstrations, seed=11)
    kept = correct = 0
    first_correct = 0
    start = time.perf_counter()
    for i, row in enumerate(rows):
        first = teacher.label_vote(0, row["text"])
        first_correct += first == row["label"]
        if votes == 1:
            label = first
        else:
            second = teacher.label_vote(0, row["text"], vote=1)
            label = first if first is not None and first == second else None
        if label is not None:
            kept += 1
            correct += label == row["label"]
        print(f"\r  {i + 1}/{len(rows)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    calls = teacher.drain_calls()
    return {
        "n": len(rows), "votes": votes, "demonstrations": len(demonstrations),
        "accuracy_first_vote": first_correct / len(rows),
        "kept": kept / len(rows), "accuracy_on_kept": correct / kept if kept else None,
        "calls": len(calls), "valid_output_rate": sum(c.ok for c in calls) / len(calls),
        "seconds_per_call_median": statistics.median(c.latency_s for c in calls),
        "seconds": time.perf_counter() - start,
    }


def one_round(task_file: Path, lm, out: Path) -> dict:
    task = load_task(task_file)
    steps: list[tuple[str, float]] = []

    def progress(event, **info):
        if event == "step":
            steps.append((info["name"].split(" ")[0], time.perf_counter()))

    loop = RoundRunner(task, out, LoopConfig(rounds=1, per_round=8), teacher_lm=lm, teacher_name="local", progress=progress)
    start = time.perf_counter()
    rounds = loop.run()
    total = time.perf_counter() - start
    import duckdb

    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    per_step = con.execute(
        "SELECT step, count(*), sum(latency_s), sum(completion_tokens), avg(ok::INT) FROM calls GROUP BY step ORDER BY step"
    ).fetchall()
    con.close()
    r1 = rounds[1]
    return {
        "task": task.name, "round_seconds": r1["seconds"], "total_seconds_incl_round0": total,
        "accepted": r1["n_accepted"], "generated": r1["n_generated"], "rejected_by_reason": r1["rejected_by_reason"],
        "analysis": r1["analysis"],
        "steps": {s: {"calls": n, "seconds": lat, "completion_tokens": int(tok), "ok_rate": ok,
                      "tokens_per_second": tok / lat if lat else None} for s, n, lat, tok, ok in per_step},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--zero-shot", action="store_true", help="also label without demonstrations (doubles the time)")
    parser.add_argument("--votes", type=int, default=1, help="2: label twice and report agreement (doubles the time)")
    parser.add_argument("--part", choices=["all", "labeling", "rounds"], default="all",
                        help="run one part and merge it into the existing teacher_local.json")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "evokd-bench-teacher")
    args = parser.parse_args()
    import shutil

    shutil.rmtree(args.scratch, ignore_errors=True)
    started = time.perf_counter()
    load = time.perf_counter()
    lm = make_local_lm(temperature=0.8, max_tokens=1500)
    warm_task = load_task(ROOT / "datasets" / "sst2" / "task.yaml")
    Teacher(warm_task, lm).label_vote(0, "a warm-up sentence")
    results_load = time.perf_counter() - load
    info = teacher_info(verify=True)
    info["model_path"] = str(info["model_path"]).replace(str(Path.home()), "~")  # no machine paths in results
    existing = OUT / "teacher_local.json"
    results: dict = json.loads(existing.read_text()) if args.part != "all" and existing.is_file() else {}
    results.update({"teacher": info, "model_load_and_first_call_s": results_load})
    results.setdefault("labeling", {})
    results.setdefault("rounds", {})
    results.setdefault("meta", {})
    cases = {"sst2": DATA / "sst2" / "dev.jsonl", "ag_news": DATA / "ag_news" / "test.jsonl"}
    for name, path in (cases.items() if args.part in ("all", "labeling") else []):
        task = load_task(ROOT / "datasets" / name / "task.yaml")
        rows = sample_rows(path, args.n)
        demos = RoundRunner(task, args.scratch / f"unused-{name}", LoopConfig())._demonstrations()
        if args.zero_shot:
            print(f"{name}: zero-shot", file=sys.stderr)
            results["labeling"][f"{name}/zero-shot"] = label_accuracy(task, lm, rows, [], 1)
        print(f"{name}: with seed demonstrations, {args.votes} vote(s)", file=sys.stderr)
        results["labeling"][f"{name}/demos"] = label_accuracy(task, lm, rows, demos, args.votes)
    for name in (("sst2", "trec") if args.part in ("all", "rounds") else ()):
        print(f"{name}: one loop round", file=sys.stderr)
        results["rounds"][name] = one_round(ROOT / "datasets" / name / "task.yaml", lm, args.scratch / f"round-{name}")
    results["meta"][args.part] = {
        "date": dt.date.today().isoformat(), "evokd_version": evokd.__version__, "python": platform.python_version(),
        "cpu": next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?"),
        "cores": __import__("os").cpu_count(), "threads": default_threads(),
        "command": f"EVOKD_LOCAL_THREADS={default_threads()} .venv/bin/python benchmarks/teacher_local.py --n {args.n}"
                   + f" --votes {args.votes} --part {args.part}" + (" --zero-shot" if args.zero_shot else ""),
        "wall_seconds": time.perf_counter() - started,
    }
    (OUT / "teacher_local.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (OUT / "teacher_local.md").write_text(render(results))
    print(render(results))


def render(r: dict) -> str:
    lines = ["# Embedded local teacher (Qwen2.5-Coder-1.5B-Instruct Q4_K_M)", ""]
    for part, m in r["meta"].items():
        lines += [f"- **{part}**: {m['cpu']}, {m['cores']} cores, llama.cpp threads {m['threads']}; Python {m['python']}; "
                  f"evokd {m['evokd_version']}; {m['date']}; `{m['command']}` ({m['wall_seconds'] / 60:.1f} min)."]
    lines += [
        "",
        "## Labeling accuracy on real held-out items",
        "",
        "The teacher's labeling step as the loop calls it. *Two votes*: the text is labeled twice with",
        "independent samples and kept only if both agree (`--label-votes 2`).",
        "",
        "| data | prompt | accuracy (1 vote) | kept with 2 votes | accuracy on kept | valid outputs | s/call (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, v in r["labeling"].items():
        name, mode = key.split("/")
        kept = f"{v['kept']:.1%}" if v["votes"] > 1 else "–"
        acc_kept = f"{v['accuracy_on_kept']:.1%}" if v["votes"] > 1 and v["accuracy_on_kept"] is not None else "–"
        prompt = "zero-shot" if mode == "zero-shot" else f"{v['demonstrations']} seed demos"
        lines.append(f"| {name} (n={v['n']}) | {prompt} | "
                     f"{v['accuracy_first_vote']:.1%} | {kept} | {acc_kept} | {v['valid_output_rate']:.1%} | "
                     f"{v['seconds_per_call_median']:.2f} |")
    lines += ["", "## One loop round (8 texts: 4 hard + 4 easy)", "",
              "| task | step | calls | seconds | completion tokens | completion tokens per call-second (prompt reading included) | valid outputs |", "|---|---|---|---|---|---|---|"]
    for task, v in r["rounds"].items():
        for step, s in v["steps"].items():
            tps = f"{s['tokens_per_second']:.1f}" if s["tokens_per_second"] else "–"
            lines.append(f"| {task} | {step} | {s['calls']} | {s['seconds']:.1f} | {s['completion_tokens']} | {tps} | {s['ok_rate']:.0%} |")
    lines += [""]
    for task, v in r["rounds"].items():
        lines.append(f"- **{task}**: round took {v['round_seconds']:.1f} s; {v['accepted']} of {v['generated']} texts accepted; "
                     f"rejected: {v['rejected_by_reason'] or 'none'}.")
    lines += ["", f"Model load + first call: {r['model_load_and_first_call_s']:.1f} s.", "",
              "Reading the prompt dominates each call: a 700-token analysis prompt takes ~20 s on 2 threads, while",
              "writing runs at ~9 tokens/s. Consecutive labeling calls reuse their shared prompt prefix (~2.5 s each).",
              "The labeling run used 1 thread while other jobs shared the machine, so its seconds per call are",
              "pessimistic; its accuracies do not depend on speed.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--render"]:  # rewrite the .md from the committed .json
        (OUT / "teacher_local.md").write_text(render(json.loads((OUT / "teacher_local.json").read_text())))
    else:
        main()
