"""Benchmark `evokd optimize` with the embedded local teacher: labeling accuracy on held-out real
sentences before vs after each optimiser, generation yield before vs after, wall time and tokens.

    .venv/bin/python benchmarks/optimize.py [--jobs 2] [--render-only]

Each cell is one `evokd optimize` command (printed in the results), run in a subprocess with
`EVOKD_LOCAL_THREADS=1` per job. Cells of one dataset run in order and share a work dir, so the
unoptimised and zero-shot held-out scores are computed once (the call cache answers the repeats);
datasets run in parallel. A finished cell (its .meta.json exists) is not re-run; a killed one
resumes from its call cache. The bootstrap label states are written to prompts/ (the shipped
defaults). Writes benchmarks/optimize.md and benchmarks/optimize.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent
DATA = "../shared/data"
WORK = Path("runs/optimize-bench")
HELDOUT_N = 300
DEV_N = {"trec": 48, "sst2": 48, "ag_news": 48, "conll2003": 24, "wnut17": 24}
NER = ("conll2003", "wnut17")  # shipped states only: no held-out labeling benchmark (entity F1 on validation)

# (dataset, optimizer, steps, extra args, out): in run order within a dataset
CELLS = {
    "trec": [("bootstrap", "label", ["--zero-shot"], "prompts/trec.json"),
             ("mipro", "label", ["--budget", "6"], f"{WORK}/trec/mipro.json"),
             ("gepa", "label", ["--budget", "120"], f"{WORK}/trec/gepa.json")],
    "sst2": [("bootstrap", "label", [], "prompts/sst2.json")],
    "ag_news": [("bootstrap", "label", [], "prompts/ag_news.json")],
    "conll2003": [("bootstrap", "label", [], "prompts/conll2003.json")],
    "wnut17": [("bootstrap", "label", [], "prompts/wnut17.json")],
}
# generation yield on trec: after ag_news in the second queue, in its own work dir
GENERATE = ("trec", "bootstrap", "generate", [], f"{WORK}/trec-generate/generate.json")


def command(dataset: str, optimizer: str, steps: str, extra: list[str], out: str, work: str) -> list[str]:
    cmd = ["evokd", "optimize", f"datasets/{dataset}/task.yaml", "--teacher", "local", "--optimizer", optimizer,
           "--steps", steps, "--dev", f"{DATA}/{dataset}/train.jsonl", "--dev-n", str(DEV_N[dataset]),
           "--out", out, "--work-dir", work, "--quiet"]
    if steps == "label" and dataset not in NER:
        cmd[-1:-1] = ["--heldout", f"{DATA}/{dataset}/test.jsonl", "--heldout-n", str(HELDOUT_N)]
    return cmd + extra


def meta_of(out: str) -> Path:
    p = ROOT / out
    return p.with_name(p.stem + ".meta.json")


def run_queue(queue: list[tuple], log) -> None:
    env = dict(os.environ, EVOKD_LOCAL_THREADS="1")
    for dataset, optimizer, steps, extra, out, work in queue:
        if meta_of(out).is_file():
            continue
        cmd = command(dataset, optimizer, steps, extra, out, work)
        log(f"start {dataset} {optimizer} {steps}: {shlex.join(cmd)}")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            log(f"FAILED {dataset} {optimizer}: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        log(f"done {dataset} {optimizer} {steps} in {time.perf_counter() - t0:.0f} s")


def queues() -> list[list[tuple]]:
    a = [("trec", o, s, e, out, str(WORK / "trec")) for o, s, e, out in CELLS["trec"]]
    b = [("sst2", o, s, e, out, str(WORK / "sst2")) for o, s, e, out in CELLS["sst2"]]
    for name in ("ag_news", *NER):
        b += [(name, o, s, e, out, str(WORK / name)) for o, s, e, out in CELLS[name]]
    d, o, s, e, out = GENERATE
    b.append((d, o, s, e, out, str(WORK / "trec-generate")))
    return [a, b]


def machine() -> str:
    from evokd.bench import machine as bench_machine

    return bench_machine()["cpu"]


def pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def validation_rows(recs: list[dict]) -> list[str]:
    """Table rows of cells scored on the validation half only (generation yield, NER entity F1)."""
    out = []
    for g in recs:
        if not g["done"]:
            out.append(f"| {g['dataset']} | {g['optimizer']} | not run yet | | | | | | |")
            continue
        out.append(f"| {g['dataset']} | {g['optimizer']} | {pct(g['validation_before'])} | {pct(g['validation_after'])} | "
                   f"{g['kept']} | {g['demos']} | {g['n_train']}/{g['n_validation']} | {g['step_seconds']:.0f} | "
                   f"{g['step_tokens']:,} |")
    return out


def render(started: str | None = None, wall_s: float | None = None) -> None:
    import evokd

    rows, gen, ner = [], [], []
    for queue in queues():
        for dataset, optimizer, steps, extra, out, work in queue:
            path = meta_of(out)
            if not path.is_file():
                rec = {"dataset": dataset, "optimizer": optimizer, "steps": steps, "done": False,
                       "command": shlex.join(command(dataset, optimizer, steps, extra, out, work))}
                (gen if steps != "label" else ner if dataset in NER else rows).append(rec)
                continue
            meta = json.loads(path.read_text())
            step = meta["steps"][0]
            rec = {"dataset": dataset, "optimizer": optimizer, "steps": steps, "done": True, "out": out,
                   "command": shlex.join(command(dataset, optimizer, steps, extra, out, work)),
                   "validation_before": step["before"], "validation_after": step["after"], "kept": step["kept"],
                   "demos": step["demos"], "instructions_changed": step["instructions_changed"],
                   "n_validation": step["n_val"], "n_train": step["n_train"],
                   "step_seconds": step["seconds"], "step_tokens": step["tokens"], "seconds": meta["seconds"],
                   "tokens_total": meta["tokens_total"], "zero_shot": meta.get("zero_shot_heldout"),
                   "heldout": step.get("heldout"), "metric": step["metric"]}
            (gen if steps != "label" else ner if dataset in NER else rows).append(rec)
    by = {(r["dataset"], r["optimizer"]): r for r in rows if r["done"]}
    lines = ["# `evokd optimize` with the embedded local teacher", ""]
    lines += [f"- Machine: {machine()}, {os.cpu_count()} cores; one llama.cpp thread per "
              f"job, two jobs at once; Python {platform.python_version()}; evokd {evokd.__version__}"
              + (f"; {started}" if started else "") + (f"; wall {wall_s / 60:.0f} min" if wall_s else "") + ".",
              "- Command: `.venv/bin/python benchmarks/optimize.py --jobs 2` (each cell's own command is listed below).",
              f"- Data: seeds from `datasets/NAME/seeds.jsonl`; a dev slice of {DEV_N['trec']} rows sampled from "
              f"`{DATA}/NAME/train.jsonl` (half learned from, half scores candidates); {HELDOUT_N} held-out rows "
              f"sampled from `{DATA}/NAME/test.jsonl`, never seen by the optimiser. Teacher temperature 0.8, as in "
              "`evokd generate`.", ""]
    lines += ["## Labeling accuracy on held-out real sentences", "",
              "*unoptimised*: the labeling step as the loop calls it (2 seed demonstrations per label in the prompt). "
              "*kept*: the program `evokd optimize` wrote — the optimised one; the unoptimised one when the optimised "
              "one scored lower on the validation half of the dev slice; *unchanged* when the optimiser found nothing "
              "better than its starting program.", "",
              "| dataset | optimiser | zero-shot | unoptimised | after (kept program) | Δ vs unoptimised | kept | demos | "
              "new instructions | validation before → after | seconds | tokens |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["done"]:
            lines.append(f"| {r['dataset']} | {r['optimizer']} | not run yet | | | | | | | | | |")
            continue
        h = r["heldout"] or {}
        z = (by.get((r["dataset"], "bootstrap")) or {}).get("zero_shot") or r.get("zero_shot")
        delta = (h["after"] - h["before"]) * 100 if h else None
        lines.append(f"| {r['dataset']} | {r['optimizer']} | {pct(z['score']) if z else '–'} | {pct(h.get('before'))} | "
                     f"{pct(h.get('after'))} | {'–' if delta is None else f'{delta:+.1f}'} | {r['kept']} | {r['demos']} | "
                     f"{'yes' if r['instructions_changed'] else 'no'} | {pct(r['validation_before'])} → "
                     f"{pct(r['validation_after'])} (n={r['n_validation']}) | {r['step_seconds']:.0f} | {r['step_tokens']:,} |")
    lines += ["", "## Generation yield", "",
              "Yield: of the texts asked for, the fraction that are valid, not near-duplicates of the task's data, put in "
              "the intended class by the separate labeling step, and misclassified (hard) / classified right (easy) by "
              "a tfidf student trained on the seeds and dev half.", "",
              "| task | optimiser | yield before | yield after | kept | demos | items (train/val) | seconds | tokens |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += validation_rows(gen)
    lines += ["", "## NER labeling (shipped states)", "",
              "Entity F1 per sentence (exact span and type, mentions placed in the text by code), mean over the "
              "validation half of the dev slice; no held-out run.", "",
              "| task | optimiser | validation before | validation after | kept | demos | items (train/val) | seconds | tokens |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += validation_rows(ner)
    targets = []
    t = by.get(("trec", "bootstrap"))
    if t and t.get("zero_shot"):
        best = max((r["heldout"]["after"] for k, r in by.items() if k[0] == "trec" and r.get("heldout")), default=None)
        gain = (best - t["zero_shot"]["score"]) * 100
        targets.append(f"| trec labeling ≥ 15 points above zero-shot | best {pct(best)} vs zero-shot "
                       f"{pct(t['zero_shot']['score'])}: {gain:+.1f} points | {'yes' if gain >= 15 else '**no**'} |")
    s = by.get(("sst2", "bootstrap"))
    if s and s.get("heldout"):
        best = max(r["heldout"]["after"] for k, r in by.items() if k[0] == "sst2" and r.get("heldout"))
        targets.append(f"| sst2 labeling ≥ 90% | {pct(best)} | {'yes' if best >= 0.9 else '**no**'} |")
    lower = [f"{r['dataset']}/{r['optimizer']} {pct(r['heldout']['after'])} < {pct(r['heldout']['before'])}"
             for r in by.values() if r.get("heldout") and r["heldout"]["after"] < r["heldout"]["before"]]
    if by:
        targets.append(f"| never below the unoptimised program (held-out) | {'; '.join(lower) or 'none lower'} | "
                       f"{'**no**' if lower else 'yes'} |")
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|", *targets]
    lines += ["", "## Findings", "",
              "- Bootstrapped demos help where the unoptimised prompt is weakest (sst2 +7.0 points held-out) and barely "
              "on ag_news (+1.0). On trec they scored lower on validation and were not kept; MIPROv2 (6 trials) and GEPA "
              "(120 metric calls) proposed instructions through the same 1.5B model and none beat the starting program, "
              "so their programs are the unoptimised one.",
              "- Not yet a tuned setting: labeling temperature. The loop labels at 0.8; a one-off check on 60 trec test "
              "questions (unoptimised prompt, 2 threads, `/tmp` script, not committed) gave 71.7% at temperature 0 vs "
              "65.0% at 0.8. The prototype's figures in the issue (63% zero-shot, 77% one demo per class) look greedy; "
              "ours are sampled at 0.8. Tuning it (greedy first vote) is the next lever to measure.",
              "- conll2003's unoptimised entity F1 of 0.0 on 12 validation sentences (0.103 with 8 demos) says the "
              "embedded teacher barely annotates CoNLL's all-caps headlines and sports lines; wnut17 46% → 50%."]
    lines += ["", "## Commands", ""] + [f"- `{r['command']}`" for r in rows + ner + gen]
    (OUT / "optimize.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (OUT / "optimize.json").write_text(json.dumps({"machine": machine(),
                                                  "cores": os.cpu_count(), "evokd": evokd.__version__,
                                                  "started": started, "wall_s": wall_s, "labeling": rows,
                                                  "ner_labeling": ner, "generation": gen}, indent=1), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    if not args.render_only:
        started = dt.datetime.now().isoformat(timespec="minutes")
        t0 = time.perf_counter()

        def log(msg):
            print(f"{dt.datetime.now():%H:%M:%S} {msg}", flush=True)

        qs = queues()
        if args.jobs <= 1:
            qs = [[c for q in qs for c in q]]
        with ThreadPoolExecutor(len(qs)) as pool:
            list(pool.map(lambda q: run_queue(q, log), qs))
        render(started, time.perf_counter() - t0)
    else:
        render()
    print(OUT / "optimize.md")


if __name__ == "__main__":
    sys.exit(main())
