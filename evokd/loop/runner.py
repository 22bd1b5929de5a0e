"""The EvoKD round loop (Liu et al. 2024, Fig. 2), in the paper's order; orchestration only.

seeds -> train student; then each round:
  1. feedback: the student's predictions on the latest batch, made BEFORE it trained on it (feedback.py)
  2. weakness analysis (teacher)        3. inputs from the strategy's source (sources/)
  4. filters: validity, exact and near duplicates, and 5. labeling (candidates.py)
  6. student predicts the accepted batch, then retrains
  7. eval on the task's held-out data; a round whose student scores below the seed-only one there is
     rolled back (guard.py); the round is committed to the store in one transaction

The runner formats no prompt and writes no SQL: the Teacher owns prompts, the Store owns SQL, the
run folder's files are written by evokd.run_dir. What differs between task kinds is asked of
`task.rules` (evokd.task_kinds).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from evokd import __version__
from evokd.embed import encode
from evokd.errors import RunError
from evokd.filters import text_hash
from evokd.loop.candidates import Candidate, CandidateFilter, settle_answers, unconfirmed_labels
from evokd.loop.config import LoopConfig, settle
from evokd.loop import guard
from evokd.loop.feedback import select_feedback
from evokd.loop.sources import Context, Round, load_pool, make_source
from evokd.loop.state import RunState, round_rng
from evokd.loop.teacher_setup import build_teacher
from evokd.run_dir import STORE_NAME, write_outputs
from evokd.store import CallRow, RoundRecord, SampleRow, Store
from evokd.noise import fit_recorded
from evokd.students import run_student
from evokd.task import TaskSpec
from evokd.teacher.gateway import BudgetExceeded, TeacherGateway
from evokd.teacher.wording import statistics_aim
from evokd.vector_cache import VECTORS_DIR, remember_for

Progress = Callable[..., None]
CV_FOLDS = 5  # round 0: out-of-fold predictions on the seeds


def _noop(event: str, **info: Any) -> None:
    pass


class RoundRunner:
    """Runs (or resumes) generation into `out_dir`: `RoundRunner(task, out, config, ...).run()`."""

    def __init__(self, task: TaskSpec, out_dir: str | Path, config: LoopConfig, *, teacher_lm=None,
                 teacher_name: str = "", api_base: str | None = None, progress: Progress = _noop,
                 pool_vectors: Callable[[list[str]], np.ndarray] | None = None):
        self.task = task
        self.rules = task.rules
        self.out_dir = Path(out_dir)
        self.config = config
        self.teacher_lm = teacher_lm
        self.teacher_name = teacher_name
        self.api_base = api_base
        self.progress = progress
        self.pool_vectors = pool_vectors  # optional shared cache of pool embeddings (evokd bench), else embed.encode
        self.labels = task.label_names
        self.filters = CandidateFilter(self.labels, config)
        self.eval_rows, self.eval_report = task.eval_data()
        self.guard_off = guard.inactive_reason(config.eval_guard, self.eval_rows)  # None: the eval guard runs
        self._eval_vectors_read = False  # the eval rows' frozen-encoder vectors (evokd.vector_cache)
        self.data: dict[str, dict] = {}  # after run(): what reading its eval and pool data changed, as recorded
        # after run(): (label, confirmed, written) for labels the teacher rarely gives the texts it wrote for them
        self.unconfirmed: list[tuple[str, int, int]] = []
        # after run(): why it ended before --rounds because --max-minutes was spent (the planned end of a
        # time-budgeted run, not an error), or None
        self.time_budget: str | None = None
        # after run(), or once a budget (--max-tokens, --max-calls, --max-cost) stopped it: the committed rounds
        self.rounds: list[dict] = []
        self.seeds = task.seed_rows()
        self.plan = settle(config, task)

    # students ------------------------------------------------------------------------
    def _train(self, rows: list[dict]) -> tuple[Any, dict]:
        """(a fresh student fitted on `rows`, trusting each teacher label as `--noise` says; what that did)."""
        return fit_recorded(self.plan.student, rows, self.task, self.config.noise, self.config.seed)

    def _evaluate(self, student) -> dict | None:
        if not self.eval_rows:
            return None
        texts = [r["text"] for r in self.eval_rows]
        if not self._eval_vectors_read:  # once a process: saved in the run for distill, compare and a resume
            remember_for(student, self.out_dir / VECTORS_DIR, texts)
            self._eval_vectors_read = True
        pred = student.predict(texts)
        return self.rules.report([r[self.rules.target_key] for r in self.eval_rows], list(pred), self.labels)

    def _cross_predictions(self, rows: list[dict]) -> list:
        """Out-of-fold predictions on the seeds: what the student says before it has seen each one."""
        n = len(rows)
        k = min(CV_FOLDS, n)
        order = list(range(n))
        round_rng(self.config.seed, 0).shuffle(order)
        preds: list = [None] * n
        for fold in range(k):
            test_idx = set(order[fold::k])
            train = [rows[i] for i in range(n) if i not in test_idx]
            trainable, fallback = self.rules.can_train(train)
            if trainable:
                out = self._train(train)[0].predict([rows[i]["text"] for i in sorted(test_idx)])
                for i, p in zip(sorted(test_idx), out):
                    preds[i] = p
            else:
                for i in test_idx:
                    preds[i] = fallback
        return preds

    # run -----------------------------------------------------------------------------
    def run(self) -> list[dict]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with Store(self.out_dir / STORE_NAME) as store:
            info = store.run_info()
            if info is None:
                self._start(store)
            elif info["task_name"] != self.task.name:
                raise RunError(f"{self.out_dir}: holds a run of task '{info['task_name']}', not '{self.task.name}'; "
                               "use another --out directory")
            elif self.config.student is None:  # resuming: keep training the student the run started with
                self.plan = settle(self.config, self.task, run_student(info.get("config"), self.task.kind))
            if self.eval_report is not None:
                self._record_data(store, "eval", self.eval_report)
            last = store.last_round()
            if last is None:  # killed before round 0 was committed
                self._round_zero(store)
                last = 0
            teacher = None
            if self.teacher_lm is not None:
                # Every teacher call goes through the gateway: paid answers are cached in this store the
                # moment they return, so a killed or budget-stopped round costs nothing to redo.
                gateway = TeacherGateway(self.teacher_lm, self.config.gateway, cache=store)
                teacher = build_teacher(self.task, self.seeds, gateway, asdict(self.config))
            ctx = Context(self.task, self.plan, self.seeds, teacher, store, self.filters, self.progress, self.pool_vectors)
            load_pool(ctx, lambda use, report: self._record_data(store, use, report))
            if teacher is None and self.plan.calls_teacher:
                strategy = self.plan.strategy
                raise RunError(f"strategy '{strategy.name}' needs a teacher" + (" (or --oracle)" if strategy.needs_pool else ""))
            source = make_source(ctx)
            state = RunState.read(store)
            student = self._train(state.accepted)[0]
            total = self.plan.rounds
            self.progress("resume" if last > 0 else "start", done=last, total=total)
            for round_ in range(last + 1, total + 1):
                self.time_budget = self._time_spent(state, round_, total)
                if self.time_budget:
                    self.progress("time_budget", message=self.time_budget)
                    break
                try:
                    student = self._round(store, state, source, teacher, student, round_)
                except BudgetExceeded as exc:
                    done = store.last_round() or 0
                    self._finish(store)  # the committed rounds stay readable: the CLI prints their summary
                    raise BudgetExceeded(
                        f"{exc}; stopped in round {round_}, rounds up to {done} are committed in {self.out_dir} "
                        f"(the paid calls of round {round_} are cached); re-run with a higher limit to continue") from None
                state = RunState.read(store)
                write_outputs(self.out_dir, store, self.task.kind)
            return self._finish(store)

    def _finish(self, store: Store) -> list[dict]:
        """Write the run's outputs and read back what its summary says (`data`, `unconfirmed`, `rounds`):
        at the end of a run, and when a budget stops it (the committed rounds are its result so far)."""
        write_outputs(self.out_dir, store, self.task.kind)
        self.data = store.run_info()["config"].get("data", {})
        self.unconfirmed = unconfirmed_labels(store.samples(status=None, source="generated"))
        self.rounds = store.rounds()
        return self.rounds

    def _time_spent(self, state: RunState, round_: int, total: int) -> str | None:
        """The time budget (--max-minutes): why round `round_` does not start, as one line, once the
        committed rounds, those of earlier sessions of the run included, took that long (the round that
        crossed it stays committed); None while time is left or without a budget."""
        budget = self.config.max_minutes
        spent = sum(r["seconds"] or 0.0 for r in state.rounds)
        if budget is None or spent < 60 * budget:
            return None
        return (f"time budget reached: the committed rounds took {spent / 60:.2f} of --max-minutes {budget:g} minutes, "
                f"so round {round_} of {total} did not start; re-run with a higher --max-minutes (or without it) "
                "to continue")

    def _record_data(self, store: Store, use: str, report) -> None:
        """Record in the run's config what reading its `use` ("eval", "pool") data changed, and say it."""
        store.record_run_data(use, report.as_dict())
        self.progress("data", use=use, description=report.describe())

    def _start(self, store: Store) -> None:
        run_id = hashlib.sha256(f"{self.task.name}|{_dt.datetime.now().isoformat()}".encode()).hexdigest()[:16]
        config = {**asdict(self.config), "student": self.plan.student}  # the student trained, named even by default
        store.create_run(run_id, self.task.to_public_dict(), self.teacher_name, self.api_base, config, __version__)

    def _round_zero(self, store: Store) -> None:
        started = _dt.datetime.now()
        self.progress("step", round=0, name="embedding and training on seeds")
        preds = self._cross_predictions(self.seeds)
        vectors = encode([r["text"] for r in self.seeds])
        target = self.rules.target_key
        samples = [SampleRow(round=0, source="seed", text=r["text"], text_hash=text_hash(r["text"]), status="accepted",
                             embedding=v, **self.rules.sample_fields(r[target], p))
                   for r, p, v in zip(self.seeds, preds, vectors)]
        student, training = self._train(self.seeds)
        report = self._evaluate(student)
        correct = sum(self.rules.same(p, r[target]) for p, r in zip(preds, self.seeds))
        record = RoundRecord(
            round=0, started_at=started, finished_at=_dt.datetime.now(), analysis=None,
            n_generated=0, n_accepted=len(samples), n_rejected=0, rejected_by_reason={},
            feedback_size=0, feedback_accuracy=None, batch_student_accuracy=correct / len(self.seeds),
            train_size=len(self.seeds), **self.rules.eval_fields(report),
            prompt_tokens=0, completion_tokens=0, n_calls=0, n_failed_calls=0, training=training,
        )
        store.commit_round(record, samples, [])
        write_outputs(self.out_dir, store, self.task.kind)
        self.progress("round", record=record)

    # one round -------------------------------------------------------------------------
    def _round(self, store: Store, state: RunState, source, teacher, student, round_: int):
        cfg = self.config
        started = _dt.datetime.now()
        self.progress("round_start", round=round_, total=cfg.rounds)
        feedback = select_feedback(state, round_, cfg, self.rules, self.labels)
        analysis = None
        if self.plan.analyzes(round_):
            self.progress("step", round=round_, name="weakness analysis")
            analysis = teacher.analyze_weaknesses(round_, feedback, use_correct=cfg.correct_feedback)
        # A failed analysis still leaves the code-computed statistics to aim at.
        aim = analysis or statistics_aim(feedback.stats)
        self.progress("step", round=round_, name="collecting samples" if self.plan.mode == "none" else "generating inputs")
        candidates = source.collect(Round(round_, state, feedback, aim, student))
        settle_answers(candidates, self.rules, self.labels)
        accepted = [c for c in candidates if c.reject_reason is None]
        for c, (pred, score) in zip(accepted, self.rules.predict(student, [c.text for c in accepted])):
            c.student_pred, c.student_score = pred, score
        self.progress("step", round=round_, name="training the student")
        train_rows = state.accepted + [{"text": c.text, self.rules.target_key: c.teacher_label,
                                        "teacher_confidence": c.teacher_confidence} for c in accepted]
        new_student, training = self._train(train_rows)
        report = self._evaluate(new_student)
        eval_values = self.rules.eval_fields(report)
        batch_correct = [self.rules.same(c.student_pred, c.teacher_label) for c in accepted]
        verdict = guard.judge(self.rules, report, state.rounds) if self.guard_off is None and accepted else None
        if verdict is not None:
            training = {**training, "guard": verdict.record()}
            if not verdict.kept:  # roll the round back: the student and the data stay as they were
                self.progress("step", round=round_, name="rolled back: below the eval guard's bar on the eval file")
                for c in accepted:
                    c.reject_reason = guard.EVAL_DROP
                accepted, train_rows, new_student = [], state.accepted, student
                eval_values = {k: state.rounds[-1][k] for k in eval_values}  # the kept student's, as last committed
        calls: list[CallRow] = teacher.drain_calls() if teacher is not None else []
        rejected = Counter(c.reject_reason for c in candidates if c.reject_reason)
        shown = len(feedback.wrong) + len(feedback.correct)
        record = RoundRecord(
            round=round_, started_at=started, finished_at=_dt.datetime.now(), analysis=analysis,
            n_generated=len(candidates), n_accepted=len(accepted), n_rejected=len(candidates) - len(accepted),
            rejected_by_reason=dict(rejected), feedback_size=shown,
            feedback_accuracy=len(feedback.correct) / shown if shown else None,
            batch_student_accuracy=sum(batch_correct) / len(batch_correct) if batch_correct else None,
            train_size=len(train_rows), **eval_values,
            prompt_tokens=sum(c.prompt_tokens for c in calls), completion_tokens=sum(c.completion_tokens for c in calls),
            n_calls=len(calls), n_failed_calls=sum(not c.ok for c in calls), training=training,
        )
        store.commit_round(record, [self._sample_row(round_, c) for c in candidates], calls)
        self.progress("round", record=record)
        return new_student

    def _sample_row(self, round_: int, c: Candidate) -> SampleRow:
        accepted = c.reject_reason is None
        fields = self.rules.sample_fields(c.teacher_label if accepted else None, c.student_pred, c.teacher_label)
        return SampleRow(round=round_, source="pool" if c.pool_id is not None else "generated", intent=c.intent,
                         text=c.text, intended_label=c.intended_label, student_score=c.student_score,
                         label_notes=c.label_notes or None, status="accepted" if accepted else "rejected",
                         reject_reason=c.reject_reason, text_hash=c.hash or text_hash(c.text), embedding=c.embedding,
                         labeler=c.labeler, query=c.query, pool_id=c.pool_id, teacher_confidence=c.teacher_confidence,
                         **fields)
