"""What a report shows, computed from the run store (read-only): the run's rows, the latest
student's predictions and scores, labels per round, and whether the "hard" examples were hard.

What the student "got right" is the prediction the store keeps for every new sample: the one the
student made at the start of the round, BEFORE it trained on that sample (the paper's step 1).
That is the measure of whether a "hard" example was hard. The confusion matrix / per-type F1 of
the latest student is recomputed: the student is retrained on the run's accepted rows (what the
loop's last round trained on) and scored on the task's eval data, since the store keeps metrics,
not eval predictions. Without eval data it falls back to the latest batch against teacher labels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from evokd.errors import EvokdError, InputError
from evokd.run_dir import open_run
from evokd.task_kinds import TaskKind, kind_rules


@dataclass
class RunData:
    run_dir: Path
    info: dict
    rounds: list[dict]
    samples: list[dict]  # accepted and rejected
    call_stats: dict[int, dict]
    failed_calls: list[dict]

    @property
    def rules(self) -> TaskKind:
        return kind_rules(self.info["task_kind"])

    @property
    def labels(self) -> list[str]:
        return [lab["name"] for lab in self.info["task"]["labels"]]

    @property
    def target(self) -> str:
        return self.rules.target_key

    @property
    def pred(self) -> str:
        return self.rules.pred_key


def load_run(run_dir: str | Path) -> RunData:
    with open_run(run_dir) as store:
        info = store.run_info()
        rounds = store.rounds()
        if info is None or not rounds:
            raise EvokdError(f"{store.path}: the run has no committed round yet; run `evokd generate` first")
        return RunData(Path(run_dir), info, rounds, store.samples(status=None), store.call_stats(),
                       store.calls(failed=True))


def same(a, b, rules: TaskKind) -> bool:
    """The loop's notion of a correct prediction: same label; NER: exactly the same set of spans."""
    return a is not None and rules.same(a, b)


# ---------------------------------------------------------------------------------------------
# the latest student


def latest_student_eval(run: RunData, eval_path: str | Path | None, retrain: bool,
                        progress: Callable[[str], None]) -> dict:
    """Predictions of the latest student and their scores, with a note saying what they are."""
    note = ""
    if retrain:
        rows, note = _eval_rows(run, eval_path)
        if rows:
            from evokd.students import make_student, run_student
            from evokd.vector_cache import VECTORS_DIR, remember_for

            accepted = [s for s in run.samples if s["status"] == "accepted"]
            name = run_student(run.info["config"], run.info["task_kind"])
            progress(f"training the latest student ({name}) on {len(accepted)} accepted rows")
            try:
                from evokd.noise import fit_on_rows, run_noise
                from evokd.task import TaskSpec

                config = run.info["config"]
                remember_for(make_student(name), run.run_dir / VECTORS_DIR, [r["text"] for r in rows])
                student = fit_on_rows(name, accepted, TaskSpec.model_validate(run.info["task"]), run_noise(config),
                                      config.get("seed", 0))
                pred = list(student.predict([r["text"] for r in rows]))
            except (ValueError, RuntimeError, ImportError) as exc:
                note = f"retraining the {name} student failed ({str(exc).splitlines()[0]})"
            else:
                gold = [r[run.target] for r in rows]
                last = run.rounds[-1]
                where = str(eval_path) if eval_path else Path(run.info["task"]["eval"]).name
                text = (f"The latest student ({name}, retrained on the {len(accepted)} accepted rows that round "
                        f"{last['round']} trained on) on {len(rows)} eval rows from {where}.")
                return _scored(run, gold, pred, "eval", text)
    latest = [s for s in run.samples if s["status"] == "accepted" and s["source"] != "seed" and s[run.pred] is not None]
    if not latest:
        return {"source": None, "note": (note + "; " if note else "") + "no eval data and no generated samples to score"}
    r = max(s["round"] for s in latest)
    batch = [s for s in latest if s["round"] == r]
    text = (f"No eval predictions ({note or 'retraining turned off'}). Shown instead: the student at the start of "
            f"round {r} on that round's {len(batch)} new accepted samples, predicted before training on them, "
            "against the teacher's labels.")
    return _scored(run, [s[run.target] for s in batch], [s[run.pred] for s in batch], "batch", text)


def _eval_rows(run: RunData, eval_path) -> tuple[list[dict] | None, str]:
    from pydantic import ValidationError

    from evokd.task import TaskSpec

    try:
        task = TaskSpec.model_validate(run.info["task"])
    except ValidationError as exc:
        return None, f"the stored task spec does not validate ({exc.errors()[0]['msg']})"
    if eval_path is not None:  # the user's own file: its errors are the user's to fix
        return task.read_data(Path(eval_path), "eval")[0], ""
    if task.eval is None:
        return None, "the task has no eval file"
    if not Path(task.eval).is_file():
        return None, f"the task's eval file {task.eval} is not there any more (pass --eval FILE)"
    try:
        return task.read_data(task.eval, "eval")[0], ""  # as the run read it: over-long texts cut
    except InputError as exc:
        return None, f"the task's eval file could not be read ({exc})"


def _scored(run: RunData, gold, pred, source: str, note: str) -> dict:
    """The latest student's report; where each text has one label, also its confusion matrix."""
    labels = run.labels
    out = {"source": source, "note": note, "report": run.rules.report(gold, pred, labels)}
    if run.rules.one_label_per_text:
        index = {lab: i for i, lab in enumerate(labels)}
        matrix = [[0] * len(labels) for _ in labels]
        for g, p in zip(gold, pred):
            if g in index and p in index:
                matrix[index[g]][index[p]] += 1
        out["confusion"] = matrix
    out["n"] = len(gold)
    return out


def label_counts(run: RunData) -> dict[int, Counter]:
    """Accepted labels per round; NER: entity mentions per type."""
    out: dict[int, Counter] = {r["round"]: Counter() for r in run.rounds}
    for s in run.samples:
        if s["status"] != "accepted":
            continue
        c = out.setdefault(s["round"], Counter())
        c.update(run.rules.count_answers([s]))
    return out


def hardness(run: RunData) -> dict[int, dict[str, tuple[int, int]]]:
    """Per round and intent: (right before training, scored) over accepted generated samples."""
    out: dict[int, dict[str, list[int]]] = {}
    for s in run.samples:
        if s["status"] != "accepted" or s["source"] == "seed" or s[run.pred] is None:
            continue
        cell = out.setdefault(s["round"], {}).setdefault(s["intent"] or "?", [0, 0])
        cell[0] += same(s[run.pred], s[run.target], run.rules)
        cell[1] += 1
    return {r: {k: (v[0], v[1]) for k, v in d.items()} for r, d in out.items()}
