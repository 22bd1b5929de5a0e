"""Does the embedded teacher label better when it answers in another form than the bare label name?

    .venv/bin/python benchmarks/label_formats.py --data-dir $EVOKD_DATA [--n 200]

Why: on ag_news the teacher almost never says Sci/Tech (21 of 1,300 rows in
benchmarks/data/teacher_labels), and on trec it says DESC for most ENTY and NUM questions. Is that the
answer's surface (the rare first token "Sci", the code "DESC") or what the 1.5B model reads? Four ways of
scoring the same prompt's answer, on the first `--n` held-out test rows of benchmarks/label_scoring.py
(the rows `evokd optimize --dev-n 48 --heldout-n 300 --seed 0` holds out), each also with contextual
calibration (Zhao et al. 2021; the prior from "N/A", "" and "[MASK]"):

- **names**: what evokd does: every label name scored, the probabilities renormalised over the names;
- **aliases**: the same prompt, and each label's probability summed over its name, the parts of a
  compound name ("Sci/Tech": "Sci", "Tech") and the words of its description that a part abbreviates
  ("Science", "Technology"; trec: "Abbreviation", "Description", "Location", "Number");
- **letters** / **numbers**: the labels listed as "A. World: ..." (or "1. World: ..."), the
  demonstrations answered "A (World)", and the single letter (number) scored.

Writes benchmarks/label_formats.md and .json; the Markdown's closing "What it shows" is written by hand
after a run (a re-run drops it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
from evokd import datadir  # noqa: E402  (the benchmark data folder: --data-dir or EVOKD_DATA)

DATA = datadir.for_script(__file__)
DATASETS = ("ag_news", "trec", "sst2")
CONTENT_FREE = ("N/A", "", "[MASK]")


def aliases(name: str, description: str) -> list[str]:
    """The label's name, the parts of a compound name, and the description words a part abbreviates."""
    parts = [p for p in re.split(r"[/\-_&+ ]+", name) if p]
    found = [name] + (parts if len(parts) > 1 else [])
    words = re.findall(r"[A-Za-z]+", description or "")
    for part in parts:
        word = next((w for w in words if len(part) >= 3 and w.lower().startswith(part.lower()) and w.lower() != part.lower()), None)
        if word:
            found.append(word[0].upper() + word[1:].lower())
    return list(dict.fromkeys(found))


def run(dataset: str, n: int, threads: int) -> dict:
    import llama_cpp

    from label_scoring import splits
    from evokd.loop.teacher_setup import build_teacher
    from evokd.task import load_task
    from evokd.teacher.adapter import PlainLabelAdapter
    from evokd.teacher.llama_scoring import choice_logprobs, prompt_tokens
    from evokd.teacher.local import N_CTX, ensure_model, make_local_lm

    task = load_task(ROOT / "datasets" / dataset / "task.yaml")
    labels = task.label_names
    rows = splits(task)[1][:n]
    teacher = build_teacher(task, task.seed_rows(), make_local_lm(), {})
    adapter, signature = PlainLabelAdapter(), teacher.label.signature
    llama = llama_cpp.Llama(model_path=str(ensure_model()), n_ctx=N_CTX, n_threads=threads, n_threads_batch=threads,
                            verbose=False)
    demos = teacher.demonstrations_text()

    def names_prompt(text: str) -> list[dict]:
        return adapter.format(signature, [], {"task": task.description, "labels": teacher.describe_labels(),
                                              "demonstrations": demos, "text": text})

    def coded_prompt(codes: list[str], word: str):
        code = dict(zip(labels, codes))
        listed = "\n".join(f"{code[lab.name]}. {lab.name}: {lab.description}" for lab in task.labels)
        shown = "\n".join(f"text: {d['text']}\nlabel: {code[d['label']]} ({d['label']})" for d in teacher.demonstrations)
        system = "\n\n".join([signature.instructions.strip(), f"Task: {task.description}", f"Labels:\n{listed}",
                              f"Labeled examples:\n{shown}"])
        options = ", ".join(f"{c} ({lab})" for c, lab in zip(codes, labels))
        return lambda text: [{"role": "system", "content": system},
                             {"role": "user", "content": f"Which label fits the text? Answer with the {word} of one of: "
                                                         f"{options}.\n\nText: {text}"}]

    alias_of = {lab.name: aliases(lab.name, lab.description) for lab in task.labels}
    owners: dict[str, set[str]] = {}
    for lab, forms in alias_of.items():
        for form in forms:
            owners.setdefault(form, set()).add(lab)
    alias_choices = [form for form, owner in owners.items() if len(owner) == 1]  # a form two labels share counts for neither
    letters = [chr(ord("A") + i) for i in range(len(labels))]
    numbers = [str(i + 1) for i in range(len(labels))]

    def probabilities(prompt, choices: list[str], owner_of) -> callable:
        def score(text: str) -> list[float]:
            logprob, _, _ = choice_logprobs(llama, prompt_tokens(llama, prompt(text)), choices)
            return [sum(math.exp(logprob[c]) for c in choices if owner_of(c) == lab) for lab in labels]
        return score

    variants = {
        "names": probabilities(names_prompt, labels, lambda c: c),
        "aliases": probabilities(names_prompt, alias_choices, lambda c: next(iter(owners[c]))),
        "letters": probabilities(coded_prompt(letters, "letter"), letters, dict(zip(letters, labels)).get),
        "numbers": probabilities(coded_prompt(numbers, "number"), numbers, dict(zip(numbers, labels)).get),
    }
    gold = [r["label"] for r in rows]
    result = {"n": len(rows), "labels": labels, "aliases": alias_of, "gold": {lab: gold.count(lab) for lab in labels},
              "variants": {}}
    for name, score in variants.items():
        start = time.perf_counter()
        probs = [score(r["text"]) for r in rows]
        seconds = time.perf_counter() - start
        prior = [sum(values) / len(CONTENT_FREE) for values in zip(*(score(t) for t in CONTENT_FREE))]
        for calibrated in (False, True):
            answers = []
            for p in probs:
                q = [a / b for a, b in zip(p, prior)] if calibrated else p
                answers.append(labels[max(range(len(q)), key=q.__getitem__)])
            key = name + (" + calibration" if calibrated else "")
            result["variants"][key] = {"accuracy": sum(a == g for a, g in zip(answers, gold)) / len(gold),
                                       "texts_per_s": len(rows) / seconds,
                                       "answers": {lab: answers.count(lab) for lab in labels}}
            print(dataset, key, json.dumps(result["variants"][key]), file=sys.stderr, flush=True)
    llama.close()
    return result


def render(result: dict) -> str:
    lines = ["# Scored labels: does another answer form fix the teacher's blind labels?", "",
             f"- Machine: {result['machine']}; {result['threads']} llama.cpp threads; one job at a time.",
             f"- Date: {result['date']}. Commit `{result['commit']}`. Command: `{result['command']}`",
             f"- Rows: the first {result['n']} held-out test rows of `benchmarks/label_scoring.md` per dataset; the loop's "
             "labeling prompt (plain question, seed demonstrations) on the embedded teacher; see the script's docstring "
             "for the variants.", "",
             "| dataset | variant | accuracy | texts/s | answers per label (gold in the first row) |", "|---|---|---|---|---|"]
    for dataset, r in result["datasets"].items():
        lines.append(f"| {dataset} | gold | | | " + ", ".join(f"{k} {c}" for k, c in r["gold"].items()) + " |")
        for name, v in r["variants"].items():
            lines.append(f"| {dataset} | {name} | {v['accuracy']:.1%} | {v['texts_per_s']:.2f} | "
                         + ", ".join(f"{k} {c}" for k, c in v["answers"].items()) + " |")
    lines += ["", "Aliases: " + "; ".join(f"{d}: " + ", ".join(f"{lab} = {' / '.join(forms)}" for lab, forms in r["aliases"].items()
                                                              if len(forms) > 1)
                                         for d, r in result["datasets"].items() if any(len(f) > 1 for f in r["aliases"].values()))]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="The data folder comes from --data-dir DIR or EVOKD_DATA.")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from evokd.bench.aggregate import machine

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    m = machine()
    result = {"machine": f"{m['cpu']}, {m['cores']} cores; Python {m['python']}", "threads": args.threads,
              "date": dt.date.today().isoformat(), "commit": commit, "n": args.n,
              "command": ("benchmarks/label_formats.py --data-dir $EVOKD_DATA " + " ".join(sys.argv[1:])).strip(),
              "datasets": {}}
    for dataset in DATASETS:
        result["datasets"][dataset] = run(dataset, args.n, args.threads)
    (HERE / "label_formats.json").write_text(json.dumps(result, indent=2) + "\n")
    (HERE / "label_formats.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
