"""`evokd compare RUN`: what a run bought, measured on the same eval rows.

Three scores a user weighs before trusting a run: the student trained on the seeds alone (what
they would have without evokd), the student trained on everything the run accepted, and the
teacher itself, labeling a sample of the same eval rows with the prompts the run labeled with
(`loop.build_teacher`: its demonstrations, temperature, format and optimised prompts). Both
students are also scored on the teacher's sample, so every number can be read like with like.

The teacher's labels are kept in RUN/compare.json with a fingerprint of everything that shaped
them; re-running with the same teacher, prompts and sample reuses them instead of paying again.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path
from typing import Callable

from evokd.errors import EvokdError, InputError
from evokd.io import write_json_atomic
from evokd.task_kinds import kind_rules

RESULT_FILE = "compare.json"
Progress = Callable[..., None]


def _quiet(*_a, **_k) -> None:
    return None


def _report(task, gold: list, pred: list) -> dict:
    return task.rules.report(gold, pred, task.label_names)


def _fingerprint(teacher_name: str, api_base: str | None, config: dict, demos: list[dict], texts: list[str]) -> str:
    from evokd.loop.teacher_setup import recorded_label_prior

    keys = ("label_temperature", "label_format", "prompts", "seed", "demonstrations_per_label")
    blob = json.dumps({"teacher": teacher_name, "api_base": api_base, "config": {k: config.get(k) for k in keys},
                       "label_prior": recorded_label_prior(config),
                       "demos": demos, "texts": texts}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def compare(run_dir: str | Path, *, teacher_n: int = 60, eval_path: str | Path | None = None, seed: int = 0,
            teacher_lm=None, progress: Progress = _quiet) -> dict:
    """Score the seed-only student, the final student and the run's teacher on the run's eval rows.

    `teacher_lm` is the LM to label with (None: the run's own teacher, `make_lm(run teacher)`);
    `teacher_n` eval rows, drawn with `seed`, are labeled (0: skip the teacher). Writes and returns
    the result (RUN/compare.json).
    """
    from evokd.loop.guard import rolled_back
    from evokd.report import load_run
    from evokd.noise import fit_on_rows, run_noise
    from evokd.students import make_student, run_student
    from evokd.vector_cache import VECTORS_DIR, remember_for
    from evokd.task import TaskSpec

    run = load_run(run_dir)
    task = TaskSpec.model_validate(run.info["task"])
    source = Path(eval_path) if eval_path is not None else (Path(task.eval) if task.eval else None)
    if source is None:
        raise EvokdError(f"{run_dir}: the run's task has no eval file; pass --eval FILE with labeled rows to compare on")
    if not source.is_file():
        raise InputError(source, "not found; expected the labeled eval rows to compare on (--eval FILE)")
    rows, read = task.read_data(source, "eval")
    if not rows:
        raise InputError(source, "no rows; expected labeled eval rows")
    config = run.info["config"]
    name = run_student(config, task.kind)
    accepted = [s for s in run.samples if s["status"] == "accepted"]
    seeds = [s for s in accepted if s["source"] == "seed"]
    target = task.target_key
    texts = [r["text"] for r in rows]
    gold = [r[target] for r in rows]

    # the eval rows' encoder vectors, as the run saved them (else encoded once here and saved for next time)
    remember_for(make_student(name), Path(run_dir) / VECTORS_DIR, texts)
    students = {}
    for key, train in (("seed_only", seeds), ("final", accepted)):
        progress("step", name=f"training the {key.replace('_', '-')} student ({name}) on {len(train)} rows")
        started = time.perf_counter()
        student = fit_on_rows(name, train, task, run_noise(config), config.get("seed", 0))
        students[key] = {"student": name, "train_rows": len(train), "pred": list(student.predict(texts)),
                         "seconds": round(time.perf_counter() - started, 2)}

    picked = sorted(random.Random(seed).sample(range(len(rows)), min(teacher_n, len(rows))))
    # Rounds the eval guard rolled back on these same rows: then the final student was picked on them.
    same_rows = task.eval is not None and source.resolve() == Path(task.eval).resolve()
    result = {"run": str(run_dir), "task": task.name, "kind": task.kind, "eval": {"data": str(source), "n": len(rows), "read": read.describe()},
              "last_round": run.rounds[-1]["round"], "teacher": None,
              "rolled_back_on_these_rows": [r["round"] for r in run.rounds if rolled_back(r)] if same_rows else []}
    for key, s in students.items():
        result[key] = {"student": s["student"], "train_rows": s["train_rows"],
                       "eval": _report(task, gold, s["pred"]),
                       "on_teacher_rows": _report(task, [gold[i] for i in picked], [s["pred"][i] for i in picked])}
    if picked:
        result["teacher"] = _teacher_scores(run, task, rows, picked, seed, teacher_lm, progress)
    write_json_atomic(Path(run_dir) / RESULT_FILE, result)
    return result


def teacher_labels(task, seeds: list[dict], config: dict, lm, texts: list[str], progress: Progress = _quiet) -> list:
    """What `lm` answers for `texts` when asked as a run with `config` asks (`loop.build_teacher`: the
    seeds as demonstrations, labeling temperature and format, optimised prompts): a label per text
    (NER: its spans), None where it gave no usable answer."""
    from evokd.loop import build_teacher
    from evokd.teacher.gateway import TeacherGateway

    teacher = build_teacher(task, seeds, TeacherGateway(lm), config)
    out = teacher.label_many(0, texts, on_done=lambda done, total: progress("labeled", done=done, total=total))
    return [None if r is None else r[0] for r in out]  # classification: (label, reason); NER: (spans, mentions)


def score_teacher(task, gold: list, labels: list) -> dict:
    """The report of the teacher's labels against gold; a text it left unanswered counts as the kind's no-answer."""
    return _report(task, gold, [lab if lab is not None else task.rules.no_answer for lab in labels])


def _teacher_scores(run, task, rows, picked, seed, teacher_lm, progress) -> dict:
    """The run's teacher labels the picked eval rows (reusing compare.json's labels when nothing changed)."""
    from evokd.loop import seed_demonstrations
    from evokd.teacher.lm import make_lm

    config = run.info["config"]
    teacher_name, api_base = run.info["teacher"], run.info["api_base"]
    seeds = [{"text": s["text"], task.target_key: s[task.target_key]}
             for s in run.samples if s["status"] == "accepted" and s["source"] == "seed"]
    demos = seed_demonstrations(task, seeds, config.get("demonstrations_per_label", 2))
    texts = [rows[i]["text"] for i in picked]
    fingerprint = _fingerprint(teacher_name, api_base, config, demos, texts)
    previous = Path(run.run_dir) / RESULT_FILE
    labels = None
    if previous.is_file():
        try:
            old = json.loads(previous.read_text(encoding="utf-8")).get("teacher") or {}
        except (OSError, json.JSONDecodeError):
            old = {}
        if old.get("fingerprint") == fingerprint and len(old.get("labels", [])) == len(texts):
            labels, seconds, reused = old["labels"], old.get("seconds", 0.0), True
    if labels is None:
        if not teacher_name:
            raise EvokdError(f"{run.run_dir}: the run used no teacher (an --oracle pool run); nothing to compare with")
        lm = teacher_lm if teacher_lm is not None else make_lm(teacher_name, api_base=api_base)
        progress("step", name=f"the teacher labels {len(texts)} eval rows")
        started = time.perf_counter()
        labels = teacher_labels(task, seeds, config, lm, texts, progress)
        seconds, reused = round(time.perf_counter() - started, 1), False
    report = score_teacher(task, [rows[i][task.target_key] for i in picked], labels)
    return {"teacher": teacher_name, "n": len(picked), "rows": picked, "labels": labels,
            "unanswered": sum(lab is None for lab in labels), "eval": report, "seconds": seconds,
            "reused": reused, "fingerprint": fingerprint, "sample_seed": seed,
            "prompt": {k: config.get(k) for k in ("label_temperature", "label_format", "prompts")}
            | {"demonstrations": len(demos)}}


def render(result: dict) -> list[str]:
    """The comparison as a few aligned lines for the terminal."""
    rules = kind_rules(result["kind"])
    metric, key = rules.headline[1], rules.report_headline
    n = result["eval"]["n"]
    t = result["teacher"]
    lines = [f"{result['task']}: {metric} on {n} eval rows of {Path(result['eval']['data']).name}"
             + (f" (and on the {t['n']} of them the teacher labeled)" if t else "")]
    for label, part in (("seed-only student", result["seed_only"]), ("final student", result["final"])):
        line = (f"  {label:<18} {part['eval'][key]:.3f}   ({part['student']}, {part['train_rows']} training rows)")
        if t:
            line += f"   on the teacher's {t['n']}: {part['on_teacher_rows'][key]:.3f}"
        lines.append(line)
    back = result.get("rolled_back_on_these_rows") or []
    if back:
        lines.append(f"  (the run's eval guard rolled back round{'s' if len(back) > 1 else ''} {', '.join(map(str, back))} "
                     "on these rows, so the final student was picked on them: --eval OTHER.jsonl scores it on rows "
                     "it was not picked on)")
    if t:
        extra = f", {t['unanswered']} unanswered" if t["unanswered"] else ""
        lines.append(f"  {'teacher':<18} {'':5}   ({t['teacher']}, the run's labeling prompt{extra})"
                     f"   on the teacher's {t['n']}: {t['eval'][key]:.3f}")
        lines += _teacher_per_label(t["eval"].get("per_label") or {},
                                     "label" if result["kind"] == "classification" else "entity type")
    return lines


MISSED_RECALL, MISSED_SUPPORT = 0.5, 3  # a label the teacher gets right less than half the time, on 3+ rows


def _teacher_per_label(per_label: dict, noun: str) -> list[str]:
    """The teacher's recall per label, and a warning naming the labels it misses.

    A teacher that rarely says a label (the embedded one and ag_news's Sci/Tech) hands the student
    wrong labels for exactly that label's texts; the headline accuracy hides it."""
    if not per_label:
        return []
    counts = {lab: (round(v["recall"] * v["support"]), v["support"]) for lab, v in per_label.items() if v["support"]}
    lines = ["  teacher per " + noun + ", right of gold: " + ", ".join(f"{lab} {r}/{n}" for lab, (r, n) in counts.items())]
    missed = [lab for lab, (r, n) in counts.items() if n >= MISSED_SUPPORT and r / n < MISSED_RECALL]
    if missed:
        lines.append(f"  the teacher misses {', '.join(missed)} (right on fewer than half of its rows here): most of "
                     "the run's labels for such texts are wrong, and the student learns them")
    return lines
