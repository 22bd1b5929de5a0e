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
from evokd import datadir  # noqa: E402  (the benchmark data folder: --data-dir or EVOKD_DATA)

DATA = datadir.for_script(__file__, required="--render-only" not in sys.argv)
WORK = Path("runs/optimize-bench")
ARCHIVE = "benchmarks/results/optimize-t0.8"  # states + sidecars of the cells run before greedy labeling
ARCHIVE_JSON = "benchmarks/results/optimize-json"  # greedy, JSON-adapter cells run before the plain labeling question
HELDOUT_N = 300
DEV_N = {"trec": 48, "sst2": 48, "ag_news": 48, "conll2003": 24, "wnut17": 24}
NER = ("conll2003", "wnut17")  # shipped states only: no held-out labeling benchmark (entity F1 on validation)

# One cell is one `evokd optimize` command: (dataset, optimizer, steps, extra args, out, work dir, label temperature,
# label format). `evokd generate` labels greedily (label temperature 0) with the plain question (label format
# "plain") by default; the other cells ran before those defaults and are kept for comparison (their sidecars
# live in ARCHIVE and ARCHIVE_JSON; a finished cell is never re-run).
CELLS = [
    ("trec", "bootstrap", "label", ["--zero-shot"], "prompts/trec.json", f"{WORK}/plain/trec", 0.0, "plain"),
    ("sst2", "bootstrap", "label", ["--zero-shot"], "prompts/sst2.json", f"{WORK}/plain/sst2", 0.0, "plain"),
    ("ag_news", "bootstrap", "label", [], f"{WORK}/plain/ag_news/bootstrap.json", f"{WORK}/plain/ag_news", 0.0, "plain"),
    ("trec", "bootstrap", "label", ["--zero-shot"], f"{ARCHIVE_JSON}/trec-bootstrap.json", f"{WORK}/t0/trec", 0.0, "json"),
    ("sst2", "bootstrap", "label", [], f"{ARCHIVE_JSON}/sst2-bootstrap.json", f"{WORK}/t0/sst2", 0.0, "json"),
    ("sst2", "bootstrap", "label", ["--budget", "6", "--max-demos", "8"], f"{WORK}/t0/sst2/bootstrap-rs.json",
     f"{WORK}/t0/sst2", 0.0, "json"),
    ("trec", "bootstrap", "label", ["--zero-shot"], f"{ARCHIVE}/trec-bootstrap.json", f"{WORK}/trec", 0.8, "json"),
    ("trec", "mipro", "label", ["--budget", "6"], f"{ARCHIVE}/trec-mipro.json", f"{WORK}/trec", 0.8, "json"),
    ("trec", "gepa", "label", ["--budget", "120"], f"{ARCHIVE}/trec-gepa.json", f"{WORK}/trec", 0.8, "json"),
    ("sst2", "bootstrap", "label", [], f"{ARCHIVE}/sst2-bootstrap.json", f"{WORK}/sst2", 0.8, "json"),
    # prompts/ag_news.json ships this state (made at 0.8 in JSON; the plain cell above has not been run yet)
    ("ag_news", "bootstrap", "label", [], f"{ARCHIVE}/ag_news-bootstrap.json", f"{WORK}/ag_news", 0.8, "json"),
    ("conll2003", "bootstrap", "label", [], "prompts/conll2003.json", f"{WORK}/conll2003", 0.8, "json"),
    ("wnut17", "bootstrap", "label", [], "prompts/wnut17.json", f"{WORK}/wnut17", 0.8, "json"),
    # generation yield on trec, in its own work dir
    ("trec", "bootstrap", "generate", [], f"{ARCHIVE}/trec-generate.json", f"{WORK}/trec-generate", 0.8, "json"),
]


def command(dataset: str, optimizer: str, steps: str, extra: list[str], out: str, work: str, temp: float,
            fmt: str, data: str | Path = DATA) -> list[str]:
    """The cell's `evokd optimize` command; `data="$EVOKD_DATA"` gives it as recorded in the results."""
    cmd = ["evokd", "optimize", f"datasets/{dataset}/task.yaml", "--teacher", "local", "--optimizer", optimizer,
           "--steps", steps, "--dev", f"{data}/{dataset}/train.jsonl", "--dev-n", str(DEV_N[dataset]),
           "--label-temperature", f"{temp:g}", "--label-format", fmt, "--out", out, "--work-dir", work, "--quiet"]
    if steps == "label" and dataset not in NER:
        cmd[-1:-1] = ["--heldout", f"{data}/{dataset}/test.jsonl", "--heldout-n", str(HELDOUT_N)]
    return cmd + extra


def meta_of(out: str) -> Path:
    p = ROOT / out
    return p.with_name(p.stem + ".meta.json")


def run_queue(queue: list[tuple], log) -> None:
    env = dict(os.environ, EVOKD_LOCAL_THREADS="1")
    for cell in queue:
        dataset, optimizer, steps, extra, out, work, temp, fmt = cell
        if meta_of(out).is_file() and json.loads(meta_of(out).read_text()).get("label_format", "json") == fmt:
            continue
        cmd = command(*cell)
        log(f"start {dataset} {optimizer} {steps} t={temp:g} {fmt}: {shlex.join(cmd)}")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            log(f"FAILED {dataset} {optimizer}: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        log(f"done {dataset} {optimizer} {steps} in {time.perf_counter() - t0:.0f} s")


def queues() -> list[list[tuple]]:
    """Two queues that share no work dir: trec's cells, and everything else."""
    return [[c for c in CELLS if c[5].endswith("/trec")], [c for c in CELLS if not c[5].endswith("/trec")]]


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


FINDINGS = [
    "- **Asking plainly is the lever that moved sst2.** The same labeling signature rendered by DSPy's JSONAdapter "
    "(`[[ ## field ## ]]` blocks, a JSON answer) scored 61% zero-shot on the first 100 held-out sst2 sentences, "
    "answering *negative* for 86 of them; rendered as a short conversation answered with a bare label name "
    "(`PlainLabelAdapter`, a llama.cpp grammar of the label names) the model scores 87.7% zero-shot on all 300 and "
    "89.0% with the two seed demos per label (JSON: 75.3%); bootstrap keeps 4 demos and reaches 90.0%. On trec the "
    "plain question is 2.3 points lower unoptimised (63.7% vs 66.0%), but bootstrapped demos now help there (kept: "
    "70.3%, the best trec program measured), where in JSON they scored lower on validation and were dropped. "
    "`--label-format plain` is the default of `generate` and `optimize`; `--label-format json` keeps the old prompt.",
    "- The first 100 of the sst2 held-out items through DSPy's ChatAdapter scored 67% (answering *positive* for 64), "
    "so it is the structured rendering, not JSON alone, that the 1.5B model reads badly (one-off check, "
    "not a cell here).",
    "- **Greedy labeling is the lever that moved trec.** Labeling each text greedily (temperature 0) instead of "
    "sampling it at the generation temperature 0.8 raised the unoptimised program on the same 300 held-out items "
    "from 60.7% to 66.0% on trec and from 73.7% to 75.3% on sst2; zero-shot stayed where it was (48.7% sampled, "
    "47.7% greedy), so the two seed demonstrations per label are worth +18.3 points on trec once the labels are not "
    "sampled. `evokd generate` and `evokd optimize` now label greedily by default (`--label-temperature 0`); "
    "`--label-votes 2` adds a sampled second opinion.",
    "- Bootstrapped demos help where the unoptimised prompt is weakest: sst2 +9.7 points greedy (+7.0 sampled), "
    "ag_news +1.0 (sampled). On trec they scored lower on validation under both temperatures and were not kept; "
    "MIPROv2 (6 trials) and GEPA (120 metric calls) proposed instructions through the same 1.5B model and none beat "
    "the starting program.",
    "- In JSON, sst2 stayed below the 90% target (85.0% greedy with 4 bootstrapped demos); the dev slice is SST-2 *train* "
    "phrases (short fragments, 45.8% on its validation half), unlike the full test sentences, so demos picked on it "
    "transfer imperfectly.",
    "- Random search over 9 bootstrapped demo sets of up to 8 demos (`--budget 6 --max-demos 8`) found one at 87.5% "
    "on sst2's validation half, but after evokd compacts the demos to their varying fields and balances them across "
    "labels the kept program scored 70.8% there and 85.0% held-out, the same as the plain bootstrap. evokd now "
    "runs the random search itself and scores every candidate after that post-processing (the sidecar lists each "
    "candidate's validation score); this cell predates that and was not re-run.",
    "- The greedy sst2 cell was stopped once (to drop a zero-shot pass the target does not need) and resumed from its "
    "call cache: its seconds and tokens count the resumed run only.",
    "- conll2003's unoptimised entity F1 of 0.0 on 12 validation sentences (0.103 with 8 demos) says the "
    "embedded teacher barely annotates CoNLL's all-caps headlines and sports lines; wnut17 46% → 50% "
    "(both sampled at 0.8).",
]


def heldout_rows(rows: list[dict]) -> list[str]:
    """The held-out labeling table for one label temperature."""
    by = {(r["dataset"], r["optimizer"]): r for r in rows if r["done"]}
    out = ["| dataset | optimiser | zero-shot | unoptimised | after (kept program) | Δ vs unoptimised | kept | demos | "
           "new instructions | validation before → after | seconds | tokens |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["done"]:
            out.append(f"| {r['dataset']} | {r['optimizer']} | not run yet | | | | | | | | | |")
            continue
        h = r["heldout"] or {}
        z = (by.get((r["dataset"], "bootstrap")) or {}).get("zero_shot") or r.get("zero_shot")
        delta = (h["after"] - h["before"]) * 100 if h else None
        out.append(f"| {r['dataset']} | {r['optimizer']} | {pct(z['score']) if z else '–'} | {pct(h.get('before'))} | "
                   f"{pct(h.get('after'))} | {'–' if delta is None else f'{delta:+.1f}'} | {r['kept']} | {r['demos']} | "
                   f"{'yes' if r['instructions_changed'] else 'no'} | {pct(r['validation_before'])} → "
                   f"{pct(r['validation_after'])} (n={r['n_validation']}) | {r['step_seconds']:.0f} | {r['step_tokens']:,} |")
    return out


def record(cell: tuple) -> dict:
    dataset, optimizer, steps, extra, out, work, temp, fmt = cell
    if optimizer == "bootstrap" and "--budget" in extra:  # random search over demo sets
        optimizer = "bootstrap, random search ×" + extra[extra.index("--budget") + 1] + (
            f", {extra[extra.index('--max-demos') + 1]} demos" if "--max-demos" in extra else "")
    rec = {"dataset": dataset, "optimizer": optimizer, "steps": steps, "label_temperature": temp, "label_format": fmt, "done": False,
           "out": out, "command": shlex.join(command(*cell, data="$EVOKD_DATA"))}
    path = meta_of(out)
    if not path.is_file():
        return rec
    meta = json.loads(path.read_text())
    if meta.get("label_format", "json") != fmt:  # e.g. prompts/NAME.meta.json still from an older cell
        return rec
    step = meta["steps"][0]
    rec.update({"done": True, "validation_before": step["before"], "validation_after": step["after"],
                "kept": step["kept"], "demos": step["demos"], "instructions_changed": step["instructions_changed"],
                "n_validation": step["n_val"], "n_train": step["n_train"], "step_seconds": step["seconds"],
                "step_tokens": step["tokens"], "seconds": meta["seconds"], "tokens_total": meta["tokens_total"],
                "zero_shot": meta.get("zero_shot_heldout"), "heldout": step.get("heldout"), "metric": step["metric"]})
    return rec


def render(started: str | None = None, wall_s: float | None = None) -> None:
    import evokd

    recs = [record(c) for c in CELLS]
    labeling = [r for r in recs if r["steps"] == "label" and r["dataset"] not in NER]
    plain = [r for r in labeling if r["label_temperature"] == 0 and r["label_format"] == "plain"]
    greedy = [r for r in labeling if r["label_temperature"] == 0 and r["label_format"] == "json"]
    sampled = [r for r in labeling if r["label_temperature"] != 0]
    ner = [r for r in recs if r["steps"] == "label" and r["dataset"] in NER]
    gen = [r for r in recs if r["steps"] != "label"]
    lines = ["# `evokd optimize` with the embedded local teacher", ""]
    lines += [f"- Machine: {machine()}, {os.cpu_count()} cores; one llama.cpp thread per "
              f"job, two jobs at once; Python {platform.python_version()}; evokd {evokd.__version__}"
              + (f"; {started}" if started else "") + (f"; wall {wall_s / 60:.0f} min" if wall_s else "") + ".",
              "- Command: `.venv/bin/python benchmarks/optimize.py --jobs 2` (each cell's own command is listed below; "
              "a cell whose sidecar exists is not re-run).",
              f"- Data: seeds from `datasets/NAME/seeds.jsonl`; a dev slice of {DEV_N['trec']} rows sampled from "
              f"`$EVOKD_DATA/NAME/train.jsonl` (half learned from, half scores candidates); {HELDOUT_N} held-out rows "
              f"sampled from `$EVOKD_DATA/NAME/test.jsonl`, never seen by the optimiser (the same rows in every cell).",
              "- Labeling: `evokd generate` labels greedily by default (`--label-temperature 0`; generation samples at "
              "0.8), and puts each classification text to the teacher as a plain question answered with a bare label "
              "name (`--label-format plain`). The first table is measured that way. The second asked the same "
              "signature through DSPy's JSONAdapter (`--label-format json`, greedy; states and sidecars in "
              f"`{ARCHIVE_JSON}/`); the third also sampled the labels at 0.8 (`{ARCHIVE}/`): both ran before those "
              "defaults existed.", ""]
    explain = ("*unoptimised*: the labeling step as the loop calls it (2 seed demonstrations per label in the prompt). "
               "*zero-shot*: no demonstrations at all. *kept*: the program `evokd optimize` wrote — the optimised one; "
               "the unoptimised one when the optimised one scored lower on the validation half of the dev slice; "
               "*unchanged* when the optimiser found nothing better than its starting program.")
    lines += ["## Labeling accuracy on held-out real sentences — plain question, greedy (the defaults)", "", explain, "",
              *heldout_rows(plain),
              "", "## The same through DSPy's JSONAdapter, greedy (before the plain question)", "", *heldout_rows(greedy),
              "", "## The same, labeling sampled at temperature 0.8 (before greedy labeling)", "", *heldout_rows(sampled)]
    lines += ["", "## Generation yield (label temperature 0.8)", "",
              "Yield: of the texts asked for, the fraction that are valid, not near-duplicates of the task's data, put in "
              "the intended class by the separate labeling step, and misclassified (hard) / classified right (easy) by "
              "a tfidf student trained on the seeds and dev half.", "",
              "| task | optimiser | yield before | yield after | kept | demos | items (train/val) | seconds | tokens |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += validation_rows(gen)
    lines += ["", "## NER labeling (shipped states, label temperature 0.8)", "",
              "Entity F1 per sentence (exact span and type, mentions placed in the text by code), mean over the "
              "validation half of the dev slice; no held-out run.", "",
              "| task | optimiser | validation before | validation after | kept | demos | items (train/val) | seconds | tokens |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += validation_rows(ner)
    targets = []
    for label, group in (("plain question, greedy", plain), ("JSON, greedy", greedy), ("JSON, sampled at 0.8", sampled)):
        by = {(r["dataset"], r["optimizer"]): r for r in group if r["done"]}
        t = by.get(("trec", "bootstrap"))
        if t and t.get("zero_shot"):
            best = max((r["heldout"]["after"] for k, r in by.items() if k[0] == "trec" and r.get("heldout")), default=None)
            gain = (best - t["zero_shot"]["score"]) * 100
            targets.append(f"| trec labeling ≥ 15 points above zero-shot ({label}) | best {pct(best)} vs zero-shot "
                           f"{pct(t['zero_shot']['score'])}: {gain:+.1f} points | {'yes' if gain >= 15 else '**no**'} |")
        s = by.get(("sst2", "bootstrap"))
        if s and s.get("heldout"):
            best = max(r["heldout"]["after"] for k, r in by.items() if k[0] == "sst2" and r.get("heldout"))
            z = f" (zero-shot {pct(s['zero_shot']['score'])})" if s.get("zero_shot") else ""
            targets.append(f"| sst2 labeling ≥ 90% ({label}) | {pct(best)}{z} | {'yes' if best >= 0.9 else '**no**'} |")
    lower = [f"{r['dataset']}/{r['optimizer']}/t{r['label_temperature']:g}/{r['label_format']} {pct(r['heldout']['after'])} < "
             f"{pct(r['heldout']['before'])}" for r in labeling
             if r["done"] and r.get("heldout") and r["heldout"]["after"] < r["heldout"]["before"]]
    if any(r["done"] for r in labeling):
        targets.append(f"| never below the unoptimised program (held-out, every cell) | {'; '.join(lower) or 'none lower'} | "
                       f"{'**no**' if lower else 'yes'} |")
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|", *targets]
    lines += ["", "## Findings", "", *FINDINGS]
    lines += ["", "## Commands", ""] + [f"- `{r['command']}`" for r in plain + greedy + sampled + ner + gen]
    (OUT / "optimize.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (OUT / "optimize.json").write_text(json.dumps({"machine": machine(),
                                                  "cores": os.cpu_count(), "evokd": evokd.__version__,
                                                  "started": started, "wall_s": wall_s, "labeling": labeling,
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
