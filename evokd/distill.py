"""`evokd distill`: train a student on a generated dataset and ship it as a self-contained folder.

The folder is built in a temporary sibling directory and moved into place only when the
ONNX export has passed its parity check (and, with `--quantize int8`, the int8 graph has passed
its accuracy check against the float one), so a failed or interrupted distill leaves nothing
half-written. `--student auto` trains every candidate student for the task kind and ships the
one with the best cross-validated (or held-out) score.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from evokd import __version__
from evokd.errors import EvokdError, InputError
from evokd.io import ReadReport, write_json_atomic
from evokd.task import TaskSpec, read_data
from evokd.model_card import model_card
from evokd.run_dir import dataset_file, is_run_dir
from evokd.noise import DEFAULT_NOISE, RELABELING_MODES, training_rows, weights_once
from evokd.task_kinds import kind_rules
from evokd.vector_cache import VECTORS_DIR, remember_for

PARITY_LIMIT = 2000
CV_FOLDS = 5
INT8_MAX_LOSS = 1.0  # accuracy points an int8 graph may lose against the float one
AUTO_MINUTES = 20.0  # --student auto stops scoring candidates after this long (--auto-minutes)


class QuantizationError(EvokdError):
    """The int8 graph loses more accuracy than the user allowed."""


def load_dataset(dataset: str | Path, task: TaskSpec) -> tuple[list[dict], ReadReport]:
    """The training rows of a run directory (its dataset.jsonl) or a labeled file, read as users have
    them (`TaskSpec.read_data(..., "train")`: repeats merged, over-long texts cut), and the report
    of what reading changed."""
    path = dataset_file(dataset)
    rows, report = task.read_data(path, "train")
    if not rows:
        raise InputError(path, "no rows; expected labeled examples")
    task.rules.check_training_rows(rows, path)
    return rows, report


LATENCY_CALLS = 300  # single-sentence calls timed for the model card ...
LATENCY_SECONDS = 5.0  # ... or as many as this allows, at least LATENCY_MIN_CALLS (mpnet: ~100 at ~50 ms)
LATENCY_MIN_CALLS = 50


def measure_latency(student_dir: Path, texts: list[str], n: int = LATENCY_CALLS,
                    max_seconds: float = LATENCY_SECONDS) -> dict:
    """Single-sentence latency of the shipped student in its own runtime: `n` calls, one text each,
    stopping early once `max_seconds` have passed and at least LATENCY_MIN_CALLS were timed."""
    from evokd.runtime import load_student

    runtime = load_student(student_dir)
    runtime.predict([texts[i % len(texts)] for i in range(5)])  # warm-up
    times = []
    started = time.perf_counter()
    for i in range(n):
        if len(times) >= LATENCY_MIN_CALLS and time.perf_counter() - started > max_seconds:
            break
        begin = time.perf_counter()
        runtime.predict([texts[i % len(texts)]])
        times.append((time.perf_counter() - begin) * 1e3)
    times.sort()
    runtime_name = "spaCy" if runtime.meta.get("runtime") == "spacy" else "onnxruntime"
    return {"single_sentence_ms_p50": statistics.median(times), "single_sentence_ms_p95": times[int(0.95 * (len(times) - 1))],
            "n_calls": len(times), "runtime": runtime_name}


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _build_student(name: str, task: TaskSpec, params: dict | None):
    from evokd.students import STUDENTS, make_student

    if name not in STUDENTS:
        raise EvokdError(f"--student {name!r}: expected one of: {', '.join([*STUDENTS, 'auto'])}")
    try:
        student = make_student(name, **(params or {}))
    except TypeError:
        unknown = sorted(set(params or {}) - set(_param_names(STUDENTS[name])))
        raise EvokdError(f"--param {', '.join(unknown)}: not a parameter of {name}; "
                         f"expected one of: {', '.join(_param_names(STUDENTS[name]))}") from None
    if student.kind != task.kind:
        raise EvokdError(f"--student {name} is a {student.kind} student but task {task.name!r} is {task.kind}; "
                         f"expected one of: {', '.join(_candidates(task))}")
    return student


def _param_names(cls) -> list[str]:
    import inspect

    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def _candidates(task: TaskSpec, onnx_only: bool = False) -> list[str]:
    from evokd.students import CANDIDATES, STUDENTS

    return [n for n in CANDIDATES[task.kind] if not onnx_only or getattr(STUDENTS[n], "runtime", "onnxruntime") == "onnxruntime"]


def _fit(student, name: str, texts: list[str], targets: list, task: TaskSpec, weights=None,
         progress=lambda msg: None) -> float:
    """Fit (with per-text `weights`, when given) and return the seconds it took; a student's own
    ValueError (a bad --param value, data its method cannot use) becomes a one-line error. A student
    that fine-tunes its encoder (minutes to half an hour on a CPU) reports each epoch to `progress`."""
    from evokd.students import fit_student

    start = time.perf_counter()
    if hasattr(student, "on_epoch"):
        student.on_epoch = lambda info: progress(epoch_line(name, info))
    try:
        fit_student(student, texts, targets, task, sample_weight=weights)
    except ValueError as exc:
        raise EvokdError(f"--student {name}: {exc}") from None
    finally:
        if hasattr(student, "on_epoch"):
            student.on_epoch = None
    return time.perf_counter() - start


def epoch_line(name: str, info: dict) -> str:
    """One progress line after a fine-tuning epoch: where it is, the held-out accuracy, the time left."""
    epoch, epochs, seconds = info["epoch"], info["epochs"], info["seconds"]
    held = info.get("held_out_accuracy")
    left = seconds / epoch * (epochs - epoch)

    def span(s: float) -> str:
        return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"

    return (f"fine-tuning {name}: epoch {epoch} of {epochs} done"
            + (f", held-out accuracy {held:.3f}" if held is not None else "")
            + f", {span(seconds)} so far" + (f", about {span(left)} left" if epoch < epochs else ""))


def _score(task: TaskSpec, gold: list, pred: list) -> dict:
    """The selection metric: macro-F1 (classification, plus accuracy) or entity F1 (NER)."""
    return task.rules.score(gold, pred, task.label_names)


def _folds(task: TaskSpec, targets: list, n_folds: int) -> tuple[list, dict]:
    """(train, test) index pairs: stratified when every label has 2+ examples, else plain k-fold."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(targets)
    rarest = task.rules.smallest_class(targets)
    smallest = rarest[1] if rarest else 0
    if smallest >= 2:
        k = min(n_folds, smallest)
        splits = StratifiedKFold(k, shuffle=True, random_state=0).split(np.zeros(n), targets)
        return list(splits), {"folds": k, "stratified": True}
    k = min(n_folds, n)
    return list(KFold(k, shuffle=True, random_state=0).split(np.zeros(n))), {"folds": k, "stratified": False}


def select_student(task: TaskSpec, rows: list[dict], candidates: list[str], *,
                   eval_rows: list[dict] | None = None, eval_name: str | None = None, n_folds: int = CV_FOLDS,
                   noise: str = "none", max_minutes: float | None = AUTO_MINUTES, progress=lambda msg: None,
                   weigh=None):
    """Train every candidate and return (the best one fitted on all rows, the selection record, seconds).

    Without held-out rows each candidate is scored on pooled out-of-fold predictions of a k-fold
    cross-validation (more stable than averaging per-fold scores when folds hold a handful of
    texts); the winner is then refitted on everything. With held-out rows each candidate is
    fitted once and scored on them. Ties go to the earlier (cheaper) candidate. Every fit trains
    as `noise` says (`evokd.noise.training_weights` on all rows, computed once: `weigh`, from
    `evokd.noise.weights_once`, when the caller has one; a fold trains on its share). Candidates
    run cheapest first; once `max_minutes` have passed, the candidate in progress and those after
    it are recorded as skipped, and the choice is among those scored.
    """
    from evokd.students import fit_student

    texts, targets = [r["text"] for r in rows], [r[task.target_key] for r in rows]
    weigh = weigh or weights_once(rows, task, noise)
    metric = task.rules.selection_metric
    records, fitted = [], {}
    deadline = time.perf_counter() + 60 * max_minutes if max_minutes else float("inf")

    def out_of_time() -> bool:  # the first candidate is always scored, so there is something to choose
        return any("score" in r for r in records) and time.perf_counter() > deadline

    if eval_rows:
        method = {"method": "held-out data", "data": Path(eval_name).name, "n": len(eval_rows)}
        gold = [r[task.target_key] for r in eval_rows]
    else:
        splits, how = _folds(task, targets, n_folds)
        method = {"method": "cross-validation", "data": f"training data ({len(texts)} examples)", "n": len(texts), **how}
    for name in candidates:
        if out_of_time():
            records.append({"student": name, "skipped": f"the {max_minutes:g}-minute limit of --auto-minutes had passed"})
            continue
        student = _build_student(name, task, None)
        unavailable = getattr(student, "unavailable", lambda: None)()
        if unavailable or len(rows) < student.auto_min_rows:
            records.append({"student": name, "skipped": unavailable or (
                f"{len(rows)} training rows; auto tries it from {student.auto_min_rows} (fine-tuning paid only from "
                "hundreds of texts, benchmarks/students.md)")})
            continue
        weights, _ = weigh(student)
        start = time.perf_counter()
        if eval_rows:
            progress(f"auto: training {name} on {len(texts)} examples, scoring on {method['data']}")
            seconds = _fit(student, name, texts, targets, task, weights, progress)
            fitted[name] = (student, seconds)
            records.append({"student": name, **_score(task, gold, student.predict([r["text"] for r in eval_rows])),
                            "seconds": round(seconds, 2)})
            continue
        progress(f"auto: {how['folds']}-fold cross-validation of {name}")
        pred = [None] * len(texts)
        for train, test in splits:
            if out_of_time():
                break
            student = _build_student(name, task, None)
            try:
                fit_student(student, [texts[i] for i in train], [targets[i] for i in train], task,
                            sample_weight=None if weights is None else weights[train])
            except ValueError as exc:
                raise EvokdError(f"--student auto: cannot cross-validate {name} on {len(texts)} examples ({exc}); "
                                 "pass --eval FILE to choose on held-out data") from None
            for i, p in zip(test, student.predict([texts[i] for i in test])):
                pred[i] = p
        else:
            records.append({"student": name, **_score(task, targets, pred), "seconds": round(time.perf_counter() - start, 2)})
            continue
        records.append({"student": name, "skipped": f"its cross-validation outran the {max_minutes:g}-minute limit of "
                                                    "--auto-minutes"})
    scored = [r for r in records if "score" in r]
    if not scored:
        raise EvokdError(f"--student auto: none of {', '.join(candidates)} can train here: "
                         + "; ".join(f"{r['student']}: {r['skipped']}" for r in records))
    best_record = max(scored, key=lambda r: (r["score"], -candidates.index(r["student"])))
    best = best_record["student"]
    if best in fitted:
        student, seconds = fitted[best]
    else:
        progress(f"auto: {best} scored best; training it on all {len(texts)} examples")
        student = _build_student(best, task, None)
        seconds = _fit(student, best, texts, targets, task, weigh(student)[0], progress)
    skipped = [f"{r['student']} ({r['skipped']})" for r in records if "skipped" in r]
    why = (f"{best} had the best {metric} ({best_record['score']:.4f}) of the {len(scored)} candidates scored by "
           f"{method['method']}" + (f"; not scored: {'; '.join(skipped)}" if skipped else ""))
    selection = {**method, "metric": metric, "candidates": records, "chosen": best, "why_chosen": why}
    return student, selection, seconds


def distill(dataset: str | Path, task: TaskSpec, student_name: str, out_dir: str | Path, *,
            eval_path: str | Path | None = None, command: str = "", progress=lambda msg: None,
            params: dict | None = None, quantize: str | None = None, int8_max_loss: float = INT8_MAX_LOSS,
            n_folds: int = CV_FOLDS, noise: str = DEFAULT_NOISE, auto_minutes: float | None = AUTO_MINUTES) -> dict:
    """Train `student_name` ("auto": the best of the task kind's candidates) on `dataset` and
    write the student folder `out_dir`; returns what it writes to metrics.json. Its "data" records
    what reading the training (and eval) data changed (evokd.io.ReadReport: repeats merged,
    conflicting labels resolved, over-long texts cut)."""
    from evokd.students.base import QUANTIZED_SCHEME

    out_dir = Path(out_dir)
    if quantize not in (None, "int8"):
        raise EvokdError(f"--quantize {quantize!r}: expected int8")
    if quantize and "accuracy" not in task.rules.bench_metrics:
        raise EvokdError("--quantize int8 is implemented for classification students (it checks accuracy against "
                         f"the float graph); task {task.name!r} is ner")
    if student_name == "auto" and params:
        raise EvokdError("--param applies to one student; with --student auto every candidate uses its defaults")
    student = None if student_name == "auto" else _build_student(student_name, task, params)
    if quantize and student is not None and getattr(student, "runtime", "onnxruntime") != "onnxruntime":
        raise EvokdError(f"--quantize int8 applies to ONNX students; {student_name} runs in spaCy")
    rows, train_report = load_dataset(dataset, task)
    eval_rows, eval_report = task.read_data(eval_path, "eval") if eval_path else task.eval_data()
    data = {"train": train_report.as_dict(), **({"eval": eval_report.as_dict()} if eval_report else {})}
    if quantize and not eval_rows:
        raise EvokdError("--quantize int8 checks the int8 graph's accuracy against the float one on held-out data: "
                         "pass --eval FILE or set `eval` in the task")
    target = task.target_key
    eval_name = str(eval_path) if eval_path else (str(task.eval) if task.eval else None)
    if noise in RELABELING_MODES and any(r.get("teacher_confidence") is not None for r in rows):
        progress("fusing the teacher's labels with the anchored student's view (--noise fuse)" if noise == "fuse" else
                 "estimating per label how often the teacher is right (--noise auto: fuse its labels or weigh them)")
    rows, fused = training_rows(rows, task, noise)
    texts, targets = [r["text"] for r in rows], [r[target] for r in rows]
    selection = None
    if student is None:
        candidates = _candidates(task, onnx_only=bool(quantize))
        select_on, reason = (eval_rows, "given with --eval") if eval_path else (None, None)
        rare = task.rules.smallest_class(targets)
        if select_on is None and rare is not None and rare[1] < 2:
            # a label seen once is never in the training folds when its example is held out:
            # every candidate would score 0 on it, and cross-validation could not tell them apart
            if not eval_rows:
                raise EvokdError(f"--student auto: cannot cross-validate, label {rare[0]!r} has a single example; "
                                 "pass --eval FILE to choose on held-out data")
            select_on, reason = eval_rows, f"cross-validation needs 2+ examples of every label; {rare[0]!r} has 1"
    # what reading the data changed, said once the options have been checked (an error stays one line)
    for read in (train_report, eval_report):
        if read is not None:
            progress(f"read {read.describe()}")
    weigh = weights_once(rows, task, noise)
    if student is None:
        student, selection, fit_seconds = select_student(
            task, rows, candidates, eval_rows=select_on, eval_name=eval_name, n_folds=n_folds, noise=noise,
            max_minutes=auto_minutes, progress=progress, weigh=weigh)
        if reason:
            selection["why"] = reason
        student_name = selection["chosen"]
        noise_record = weigh(student)[1]  # what the chosen student's last fit did
    else:
        progress(f"training {student_name} on {len(rows)} examples")
        weights, noise_record = weigh(student)
        fit_seconds = _fit(student, student_name, texts, targets, task, weights, progress)
    runtime_name = getattr(student, "runtime", "onnxruntime")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would make a shipped student readable by its creator only
    try:
        progress("exporting to ONNX and checking parity" if runtime_name == "onnxruntime" else
                 "saving the spaCy pipeline and building its wheel")
        # the eval rows first: when they all fit in the check, the check's own run of the shipped
        # graph scores them (below) and they are not predicted a second time
        eval_texts = [r["text"] for r in eval_rows] if eval_rows else []
        if is_run_dir(dataset):  # the encoder vectors generate saved for the run's eval rows (evokd.vector_cache)
            remember_for(student, Path(dataset) / VECTORS_DIR, eval_texts)
        parity = student.save(tmp, (eval_texts + texts)[:PARITY_LIMIT])
        metrics: dict = {
            "student": student_name,
            **({"requested_student": "auto"} if selection else {}),
            "task": task.name,
            "task_labels": task.label_names,
            "runtime": runtime_name,
            "runtime_requirements": _requirements(student, task),
            "evokd_version": __version__,
            "command": command,
            "train": {
                "n": len(rows),
                "fit_seconds": round(fit_seconds, 3),
                "by_label": task.rules.count_answers(rows),
                "by_source": dict(Counter(r.get("source", "unknown") for r in rows)),
                "by_round": {str(k): v for k, v in sorted(Counter(r.get("round", 0) for r in rows).items())},
                "noise": {**noise_record, **fused},
                **({"label_anchors": {"weight": student.anchor_weight, "labels": list(student.anchors_)}}
                   if getattr(student, "anchors_", None) else {}),
                **({"encoder": student.base_encoder.title, "fine_tuned": student.encoder_ is not None,
                    "fine_tuning": student.fine_tuning_}
                   if hasattr(student, "base_encoder") else {}),
            },
            "data": data,
            "parity": parity,
        }
        if selection:
            metrics["selection"] = selection
        if eval_rows:
            progress(f"evaluating on {len(eval_rows)} held-out examples")
            checked = student.checked_outputs_
            report, predicted = _evaluate_rows(tmp, task, eval_rows,
                                               checked[:len(eval_rows)] if checked and len(checked) >= len(eval_rows) else None)
            metrics["eval"] = {"data": Path(eval_name).name, **report}
        if quantize:
            progress("quantising to int8 and checking accuracy against the float graph")
            quantization, report = _quantize(tmp, task, eval_rows, Path(eval_name).name, metrics["eval"], predicted,
                                             int8_max_loss)
            metrics["quantization"] = {"scheme": QUANTIZED_SCHEME, **quantization}
            metrics["eval"] = {"data": Path(eval_name).name, **report}
        progress("measuring latency")
        metrics["latency"] = measure_latency(tmp, texts)
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


def _requirements(student, task: TaskSpec) -> list[str]:
    if getattr(student, "runtime", "onnxruntime") == "spacy":
        return ["spacy"]
    extra = ["tokenizers"] if student.input == "token_ids" else ["spacy (tokenizer only)"] if student.input == "tokens" else []
    return ["onnxruntime", "numpy", *extra]


def _evaluate_rows(student_dir: Path, task: TaskSpec, eval_rows: list[dict],
                   outputs: list[dict] | None = None) -> tuple[dict, list]:
    """(metrics, predictions) of the shipped student, in its own runtime, on held-out rows.
    `outputs`: that runtime's outputs on those rows when already known (the parity check's run of
    the same graph, `Student.checked_outputs_`); otherwise the folder is loaded and run on them."""
    from evokd.runtime import load_student

    out = outputs if outputs is not None else load_student(student_dir).predict([r["text"] for r in eval_rows])
    pred = task.rules.shipped_answers(out)
    return task.rules.report([r[task.target_key] for r in eval_rows], pred, task.label_names), pred


def _quantize(student_dir: Path, task: TaskSpec, eval_rows: list[dict], eval_name: str, fp32: dict,
              fp32_pred: list, max_loss: float) -> tuple[dict, dict]:
    """Replace model.onnx by its int8 version if it keeps accuracy within `max_loss` points of the
    float graph on the held-out rows; otherwise raise QuantizationError (nothing is written)."""
    from evokd.runtime import MODEL_FILE, META_FILE
    from evokd.students.base import quantize_int8

    model = student_dir / MODEL_FILE
    float_copy = student_dir / "model.fp32.onnx"  # removed below; never shipped
    model.rename(float_copy)
    try:
        quantize_int8(float_copy, model)
        int8, int8_pred = _evaluate_rows(student_dir, task, eval_rows)
        loss = 100 * (fp32["accuracy"] - int8["accuracy"])
        agreement = sum(a == b for a, b in zip(fp32_pred, int8_pred)) / len(eval_rows)
        if loss > max_loss:
            raise QuantizationError(
                f"--quantize int8: the int8 graph loses {loss:.2f} accuracy points on {eval_name} "
                f"(float {fp32['accuracy']:.4f}, int8 {int8['accuracy']:.4f}; allowed {max_loss:g}); nothing written. "
                "Drop --quantize to ship the float graph, or raise --int8-max-loss"
            )
        report = {
            "data": eval_name, "n": len(eval_rows),
            "fp32_accuracy": fp32["accuracy"], "int8_accuracy": int8["accuracy"],
            "fp32_macro_f1": fp32["macro_f1"], "int8_macro_f1": int8["macro_f1"],
            "accuracy_loss_points": round(loss, 3), "max_loss_points": max_loss,
            "label_agreement_with_fp32": agreement,
            "fp32_model_bytes": float_copy.stat().st_size, "int8_model_bytes": model.stat().st_size,
        }
    finally:
        float_copy.unlink(missing_ok=True)
    meta = json.loads((student_dir / META_FILE).read_text(encoding="utf-8"))
    meta["quantization"] = {k: report[k] for k in ("fp32_accuracy", "int8_accuracy", "accuracy_loss_points", "data")}
    (student_dir / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report, int8


def evaluate(student_dir: str | Path, data: str | Path) -> dict:
    """Scores of a shipped student on labeled rows, read as eval data (every row kept, a text over
    MAX_TEXT_CHARS cut); "data_read" says what reading changed."""
    from evokd.runtime import load_student

    runtime = load_student(student_dir)
    labels = list(runtime.labels)
    metrics_file = Path(student_dir) / "metrics.json"
    if metrics_file.is_file():  # the task's full label set, which may be wider than what the student saw
        labels = json.loads(metrics_file.read_text(encoding="utf-8")).get("task_labels", labels)
    rules = kind_rules(runtime.meta.get("kind", "classification"))
    rows, read = read_data(data, labels, kind=rules.name, use="eval")
    if not rows:
        raise InputError(data, f"no rows; expected {rules.row_format} rows")
    report = rules.report([r[rules.target_key] for r in rows], rules.shipped_answers(runtime.predict([r["text"] for r in rows])), labels)
    return {"data": str(data), **report, "data_read": read.describe()}
