"""`evokd distill`: train a student on a generated dataset and ship it as a self-contained folder.

The folder is built in a temporary sibling directory and moved into place only when the
ONNX export has passed its parity check, so a failed or interrupted distill leaves nothing half-written.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from evokd import __version__
from evokd.errors import InputError
from evokd.io import read_labeled, write_json_atomic
from evokd.metrics import classification_report, entity_report
from evokd.task import TaskSpec

PARITY_LIMIT = 2000


def load_dataset(dataset: str | Path, task: TaskSpec) -> list[dict]:
    path = Path(dataset)
    if not path.exists():
        raise InputError(path, "not found; expected a run directory written by `evokd generate` or a .jsonl file")
    if path.is_dir():
        path = path / "dataset.jsonl"
        if not path.is_file():
            raise InputError(path, "not found; expected a run directory written by `evokd generate` or a .jsonl file")
    rows = task.read_rows(path)
    if not rows:
        raise InputError(path, "no rows; expected labeled examples")
    if task.is_ner:
        if not any(r["entities"] for r in rows):
            raise InputError(path, "no entities in any row; expected annotated examples", field="entities")
    elif len({r["label"] for r in rows}) < 2:
        raise InputError(path, "fewer than two distinct labels; expected examples of at least two labels", field="label")
    return rows


def measure_latency(student_dir: Path, texts: list[str], n: int = 300) -> dict:
    """Single-sentence latency of the shipped ONNX student (onnxruntime only)."""
    from evokd.runtime import load_student

    runtime = load_student(student_dir)
    sample = [texts[i % len(texts)] for i in range(n)]
    runtime.predict(sample[:5])  # warm-up
    times = []
    for text in sample:
        start = time.perf_counter()
        runtime.predict([text])
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    runtime_name = "spaCy" if runtime.meta.get("runtime") == "spacy" else "onnxruntime"
    return {"single_sentence_ms_p50": statistics.median(times), "single_sentence_ms_p95": times[int(0.95 * (len(times) - 1))],
            "n_calls": n, "runtime": runtime_name}


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def distill(dataset: str | Path, task: TaskSpec, student_name: str, out_dir: str | Path, *,
            eval_path: str | Path | None = None, command: str = "", progress=lambda msg: None) -> dict:
    from evokd.students import make_student

    out_dir = Path(out_dir)
    rows = load_dataset(dataset, task)
    eval_rows = task.read_rows(eval_path, unique=False) if eval_path else task.eval_rows()
    target = "entities" if task.is_ner else "label"
    eval_name = str(eval_path) if eval_path else (str(task.eval) if task.eval else None)
    student = make_student(student_name)
    progress(f"training {student_name} on {len(rows)} examples")
    start = time.perf_counter()
    student.fit([r["text"] for r in rows], [r[target] for r in rows])
    fit_seconds = time.perf_counter() - start

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        progress("exporting to ONNX and checking parity")
        check = [r["text"] for r in rows] + ([r["text"] for r in eval_rows] if eval_rows else [])
        parity = student.save(tmp, check[:PARITY_LIMIT])
        metrics: dict = {
            "student": student_name,
            "task": task.name,
            "task_labels": task.label_names,
            "runtime": getattr(student, "runtime", "onnxruntime"),
            "evokd_version": __version__,
            "command": command,
            "train": {
                "n": len(rows),
                "fit_seconds": round(fit_seconds, 3),
                "by_label": dict(Counter(e["label"] for r in rows for e in r["entities"])) if task.is_ner
                else dict(Counter(r["label"] for r in rows)),
                "by_source": dict(Counter(r.get("source", "unknown") for r in rows)),
                "by_round": {str(k): v for k, v in sorted(Counter(r.get("round", 0) for r in rows).items())},
            },
            "parity": parity,
        }
        if eval_rows:
            progress(f"evaluating on {len(eval_rows)} held-out examples")
            from evokd.runtime import load_student

            out = load_student(tmp).predict([r["text"] for r in eval_rows])
            if task.is_ner:
                pred = [[{k: e[k] for k in ("start", "end", "label")} for e in p["entities"]] for p in out]
                report = entity_report([r["entities"] for r in eval_rows], pred, task.label_names)
            else:
                report = classification_report([r["label"] for r in eval_rows], [p["label"] for p in out], task.label_names)
            metrics["eval"] = {"data": Path(eval_name).name, **report}
        progress("measuring latency")
        metrics["latency"] = measure_latency(tmp, [r["text"] for r in rows])
        metrics["size_bytes"] = _dir_size(tmp)
        write_json_atomic(tmp / "metrics.json", metrics)
        (tmp / "MODEL_CARD.md").write_text(model_card(task, metrics), encoding="utf-8")
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            out_dir.rename(old / "prev")
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return metrics


def model_card(task: TaskSpec, m: dict) -> str:
    train = m["train"]
    lines = [
        f"# {task.name} — `{m['student']}` student",
        "",
        (f"A CPU named-entity recogniser (spaCy pipeline, shipped as a folder and an installable wheel) distilled by "
         f"evokd {m['evokd_version']} for the task below. It needs the spaCy runtime, not onnxruntime "
         "(`evokd predict DIR TEXT`, or `pip install` the wheel)." if m.get("runtime") == "spacy" else
         f"A CPU named-entity tagger distilled by evokd {m['evokd_version']} for the task below. It runs with "
         "onnxruntime plus spaCy's rule-based English tokenizer (`evokd predict DIR TEXT` or "
         "`evokd.runtime.load_student(DIR)`)." if task.is_ner else
         f"A CPU text classifier distilled by evokd {m['evokd_version']} for the task below. It runs with "
         "onnxruntime alone (`evokd predict DIR TEXT` or `evokd.runtime.load_student(DIR)`)."),
        "",
        "## Task",
        "",
        task.description.strip(),
        "",
        "| entity type | meaning |" if task.is_ner else "| label | meaning |",
        "|---|---|",
        *[f"| {lab.name} | {lab.description} |" for lab in task.labels],
        "",
        "## Training data",
        "",
        f"{train['n']} examples (fit in {train['fit_seconds']} s).",
        "",
        "| by source | n |", "|---|---|", *[f"| {k} | {v} |" for k, v in train["by_source"].items()], "",
        "| by round | n |", "|---|---|", *[f"| {k} | {v} |" for k, v in train["by_round"].items()], "",
        "| entities by type | n |" if task.is_ner else "| by label | n |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in train["by_label"].items()], "",
        "## Metrics",
        "",
    ]
    if "eval" in m and task.is_ner:
        ev = m["eval"]
        lines += [f"Measured on `{ev['data']}` ({ev['n']} held-out sentences) with the shipped ONNX model, "
                  "entity level (exact span and type):", "",
                  f"- precision: **{ev['precision']:.4f}**, recall: **{ev['recall']:.4f}**, F1: **{ev['f1']:.4f}**", "",
                  "| type | precision | recall | F1 | support |", "|---|---|---|---|---|",
                  *[f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                    for k, v in ev["per_label"].items()], ""]
    elif "eval" in m:
        ev = m["eval"]
        lines += [f"Measured on `{ev['data']}` ({ev['n']} held-out examples) with the shipped ONNX model:", "",
                  f"- accuracy: **{ev['accuracy']:.4f}**", f"- macro-F1: **{ev['macro_f1']:.4f}**", "",
                  "| label | precision | recall | F1 | support |", "|---|---|---|---|---|",
                  *[f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                    for k, v in ev["per_label"].items()], ""]
    else:
        lines += ["No held-out data was given (`--eval` or the task's `eval`), so no accuracy is reported.", ""]
    p, lat = m["parity"], m["latency"]
    spacy_runtime = m.get("runtime") == "spacy"
    if spacy_runtime:
        runtime_line = ("- Runtime requirements: `spacy` (not onnxruntime): load `pipeline/` with `spacy.load`, or "
                        "`pip install` the wheel in this folder and `spacy.load` the package it installs.")
        parity_line = (f"- The saved pipeline predicts exactly like the trained one: {p['label_agreement']:.4f} agreement "
                       f"over {p['n_checked']} texts.")
    else:
        runtime_line = ("- Runtime requirements: `onnxruntime`, `numpy` and `spacy` (tokenizer only; no torch)." if task.is_ner
                        else "- Runtime requirements: `onnxruntime` and `numpy` (no scikit-learn, no torch).")
        parity_line = (f"- ONNX parity with the training framework: {p['label_agreement']:.4f} label agreement, "
                       f"max |Δp| = {p['max_abs_diff']:.2e} over {p['n_checked']} texts.")
    lines += [
        "## Export and runtime",
        "",
        parity_line,
        f"- Size on disk: {m['size_bytes'] / 1e6:.2f} MB.",
        f"- Latency, one sentence per call, {lat['runtime']} on 1 thread: p50 {lat['single_sentence_ms_p50']:.3f} ms, "
        f"p95 {lat['single_sentence_ms_p95']:.3f} ms ({lat['n_calls']} calls).",
        runtime_line,
        "",
        "## Provenance",
        "",
        f"Produced by evokd {m['evokd_version']} with:",
        "",
        "```",
        m["command"] or "(called from Python)",
        "```",
        "",
        "Limitations: trained on LLM-generated and seed data; the teacher's labels can be wrong, and the held-out "
        "metrics above are the only measured quality.",
        "",
    ]
    return "\n".join(lines)


def evaluate(student_dir: str | Path, data: str | Path) -> dict:
    from evokd.runtime import load_student

    runtime = load_student(student_dir)
    labels = list(runtime.labels)
    metrics_file = Path(student_dir) / "metrics.json"
    if metrics_file.is_file():  # the task's full label set, which may be wider than what the student saw
        labels = json.loads(metrics_file.read_text(encoding="utf-8")).get("task_labels", labels)
    if runtime.meta.get("kind") == "ner":
        from evokd.ner import read_ner_rows

        rows = read_ner_rows(data, labels)
        if not rows:
            raise InputError(data, "no rows; expected annotated examples")
        out = runtime.predict([r["text"] for r in rows])
        pred = [[{k: e[k] for k in ("start", "end", "label")} for e in p["entities"]] for p in out]
        return {"data": str(data), **entity_report([r["entities"] for r in rows], pred, labels)}
    rows = read_labeled(data, labels, unique=False)
    if not rows:
        raise InputError(data, "no rows; expected labeled examples")
    pred = [p["label"] for p in runtime.predict([r["text"] for r in rows])]
    report = classification_report([r["label"] for r in rows], pred, labels)
    return {"data": str(data), **report}
