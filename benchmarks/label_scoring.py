"""What contextual calibration and per-text demonstrations do to the embedded teacher's scored labels.

    .venv/bin/python benchmarks/label_scoring.py [--n 300]

The same 300 held-out sst2 and trec test rows as benchmarks/optimize.md and teacher_throughput.md,
labeled by scoring every label name (evokd's labeling step on the embedded teacher), three ways:

- **fixed**: the loop's prompt: the seed demonstrations (2 per label), the same for every text, so
  everything before the text stays in the KV cache;
- **calibrated**: the same scores divided by the label prior the prompt gives a content-free text
  (the mean over "N/A", "" and "[MASK]", Zhao et al. 2021, "Calibrate before use"), then renormalised;
- **nearest**: per text, the 4 nearest labeled rows (MiniLM cosine) among the seeds and the 48 dev rows
  `evokd optimize` learned from, as demonstrations: the prompt's beginning changes with every text, so
  each text costs a whole prompt read (~4 s); it runs on the first `--nearest-n` rows (default 60) and
  is compared with *fixed* on those same rows.

For each: accuracy, texts/s and prompt tokens read per text (the cost), and the accuracy of the most
confident half against the rest. Writes benchmarks/label_scoring.md and .json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from evokd import datadir  # noqa: E402  (the benchmark data folder: --data-dir or EVOKD_DATA)

DATA = datadir.for_script(__file__)
DATASETS = ("sst2", "trec")
HELDOUT_N, DEV_N, SPLIT_SEED = 300, 48, 0  # as benchmarks/optimize.py sampled them
CONTENT_FREE = ("N/A", "", "[MASK]")
NEAREST_K = 4
NEAREST_N = 60


def splits(task) -> tuple[list[dict], list[dict]]:
    """(dev rows, held-out rows) exactly as `evokd optimize --dev-n 48 --heldout-n 300 --seed 0` drew them."""
    seen = {r["text"] for r in task.seed_rows()}

    def rows(path: Path, n: int, exclude: set[str]) -> list[dict]:
        data = [r for r in task.read_rows(path, unique=False) if r["text"] not in exclude]
        return random.Random(SPLIT_SEED).sample(data, n) if n < len(data) else data

    dev = rows(datadir.split_file(DATA / task.name, "train"), DEV_N, seen)
    return dev, rows(datadir.split_file(DATA / task.name, "test"), HELDOUT_N, seen | {r["text"] for r in dev})


def halves(right: list[bool], confidence: list[float]) -> tuple[float, float]:
    order = sorted(range(len(right)), key=lambda i: -confidence[i])
    top, rest = order[: len(order) // 2], order[len(order) // 2:]
    return sum(right[i] for i in top) / len(top), sum(right[i] for i in rest) / len(rest)


def run(dataset: str, n: int, threads: int, nearest_n: int) -> dict:
    import llama_cpp
    import numpy as np

    from evokd.embed import encode
    from evokd.loop.teacher_setup import build_teacher
    from evokd.task import load_task
    from evokd.teacher.adapter import PlainLabelAdapter
    from evokd.teacher.llama_scoring import choice_logprobs, prompt_tokens
    from evokd.teacher.local import N_CTX, ensure_model, make_local_lm

    task = load_task(ROOT / "datasets" / dataset / "task.yaml")
    labels = task.label_names
    dev, heldout = splits(task)
    heldout = heldout[:n]
    teacher = build_teacher(task, task.seed_rows(), make_local_lm(), {})
    adapter, signature = PlainLabelAdapter(), teacher.label.signature
    llama = llama_cpp.Llama(model_path=str(ensure_model()), n_ctx=N_CTX, n_threads=threads, n_threads_batch=threads,
                            verbose=False)

    def score(text: str, demonstrations: str) -> tuple[dict[str, float], int]:
        inputs = {"task": task.description, "labels": teacher.describe_labels(), "demonstrations": demonstrations,
                  "text": text}
        logprob, _, evaluated = choice_logprobs(llama, prompt_tokens(llama, adapter.format(signature, [], inputs)), labels)
        return logprob, evaluated

    fixed_demos = teacher.demonstrations_text()
    score("a warm-up text .", fixed_demos)
    out: dict[str, dict] = {}

    start, read, fixed = time.perf_counter(), 0, []
    for row in heldout:
        logprob, evaluated = score(row["text"], fixed_demos)
        fixed.append(logprob)
        read += evaluated
    seconds = time.perf_counter() - start
    out["fixed"] = {"probabilities": fixed, "seconds": seconds, "read": read}

    start = time.perf_counter()
    prior = {lab: 0.0 for lab in labels}
    for text in CONTENT_FREE:
        logprob, _ = score(text, fixed_demos)
        for lab in labels:
            prior[lab] += math.exp(logprob[lab]) / len(CONTENT_FREE)
    calibrated = []
    for logprob in fixed:
        weights = {lab: math.exp(logprob[lab]) / prior[lab] for lab in labels}
        total = sum(weights.values())
        calibrated.append({lab: math.log(w / total) for lab, w in weights.items()})
    out["calibrated"] = {"probabilities": calibrated, "seconds": seconds + time.perf_counter() - start, "read": read,
                         "prior": prior}

    pool = task.seed_rows() + dev
    pool_vectors = encode([r["text"] for r in pool])
    start, read, nearest = time.perf_counter(), 0, []
    for row in heldout[:nearest_n]:
        similarity = pool_vectors @ encode([row["text"]])[0]
        picked = [pool[i] for i in np.argsort(-similarity)[:NEAREST_K]]
        logprob, evaluated = score(row["text"], "\n".join(teacher.answers.demonstration(r) for r in picked))
        nearest.append(logprob)
        read += evaluated
    out["nearest"] = {"probabilities": nearest, "seconds": time.perf_counter() - start, "read": read}
    out["fixed, same rows"] = {"probabilities": fixed[:nearest_n], "seconds": out["fixed"]["seconds"] * nearest_n / len(fixed),
                               "read": out["fixed"]["read"] * nearest_n / len(fixed)}
    llama.close()

    gold = [r["label"] for r in heldout]
    result = {"n": len(heldout), "nearest_n": min(nearest_n, len(heldout)), "labels": labels, "variants": {}}
    for name, v in out.items():
        answers = [max(p, key=p.get) for p in v["probabilities"]]
        right = [a == g for a, g in zip(answers, gold)]
        confidence = [math.exp(p[a]) for p, a in zip(v["probabilities"], answers)]
        top, rest = halves(right, confidence)
        result["variants"][name] = {
            "n": len(right), "accuracy": sum(right) / len(right), "texts_per_s": len(right) / v["seconds"],
            "read_per_text": v["read"] / len(right), "confident_half": top, "other_half": rest,
            "predicted": {lab: answers.count(lab) for lab in labels}}
        if "prior" in v:
            result["variants"][name]["prior"] = v["prior"]
    return result


def render(result: dict) -> str:
    lines = ["# Scored labels: contextual calibration and per-text demonstrations", "",
             f"- Machine: {result['machine']}; {result['threads']} llama.cpp threads; one job at a time.",
             f"- Date: {result['date']}. Commit `{result['commit']}`. Command: `{result['command']}`",
             f"- Rows: the {result['n']} held-out test rows of `benchmarks/optimize.md` per dataset; the loop's labeling "
             "prompt (plain question, seed demonstrations), every label name scored by the embedded teacher.", "",
             "| dataset | variant | rows | accuracy | texts/s | prompt tokens read per text | confident half | other half | "
             "answers per label |", "|---|---|---|---|---|---|---|---|---|"]
    for dataset, r in result["datasets"].items():
        for name, v in r["variants"].items():
            counts = ", ".join(f"{k} {c}" for k, c in v["predicted"].items())
            lines.append(f"| {dataset} | {name} | {v['n']} | {v['accuracy']:.1%} | {v['texts_per_s']:.2f} | {v['read_per_text']:.0f} | "
                         f"{v['confident_half']:.1%} | {v['other_half']:.1%} | {counts} |")
    lines += ["", "*fixed* is what `evokd generate` does. *calibrated* divides by the content-free prior (three extra "
                  "scored prompts per task, nothing per text). *nearest* changes the demonstrations per text, so the "
                  "prompt's beginning is read again for every text; *fixed, same rows* is *fixed* on the rows *nearest* "
                  "ran on (its time prorated)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    import subprocess

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="The data folder comes from --data-dir DIR or EVOKD_DATA.")
    parser.add_argument("--n", type=int, default=HELDOUT_N)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--nearest-n", type=int, default=NEAREST_N, help="rows the per-text demonstrations run on")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    result = {"machine": f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}", "threads": args.threads,
              "date": dt.date.today().isoformat(), "commit": commit, "n": args.n,
              "command": "benchmarks/label_scoring.py " + " ".join(sys.argv[1:]), "datasets": {}}
    for dataset in DATASETS:
        result["datasets"][dataset] = run(dataset, args.n, args.threads, args.nearest_n)
        print(dataset, json.dumps(result["datasets"][dataset]["variants"]), file=sys.stderr)
    (OUT / "label_scoring.json").write_text(json.dumps(result, indent=2) + "\n")
    (OUT / "label_scoring.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
