"""The EvoKD round loop (Liu et al. 2024, Fig. 2), in the paper's order.

seeds -> train student; then each round:
  1. feedback: the student's predictions on the latest batch, made BEFORE it trained on it
  2. weakness analysis (teacher)        3. hard + easy input generation (teacher)
  4. filters: validity, exact and near duplicates
  5. separate labeling (teacher)        6. student predicts the accepted batch, then retrains
  7. eval on the task's held-out data; the round is committed to the store in one transaction

The loop formats no prompt and writes no file itself: the Teacher owns prompts, the Store owns SQL.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from evokd import __version__
from evokd.embed import encode
from evokd.errors import RunError
from evokd.filters import REASON_EXACT_DUP, REASON_NEAR_DUP, REASON_NO_LABEL, NearDuplicateFilter, ValidityFilter, text_hash
from evokd.io import write_jsonl_atomic
from evokd.metrics import classification_report, confusion_pairs, entity_report
from evokd.store import CallRow, RoundRecord, SampleRow, Store
from evokd.students import make_student
from evokd.task import TaskSpec
from evokd.teacher.gateway import BudgetExceeded, GatewayConfig, TeacherGateway
from evokd.teacher.module import Feedback, Teacher

STORE_NAME = "evokd.duckdb"
DATASET_NAME = "dataset.jsonl"
ROUNDS_NAME = "rounds.jsonl"


@dataclass
class LoopConfig:
    rounds: int = 3
    per_round: int = 8
    seed: int = 0
    student: str | None = None  # None: tfidf for classification, tagger for NER
    near_dup_threshold: float = 0.9
    min_chars: int = 3
    max_chars: int = 1000
    use_easy: bool = True  # paper ablation: easy samples
    correct_feedback: bool = True  # paper ablation: show correct predictions to the analysis
    review_every: int = 2  # paper ablation: replay earlier hard mistakes every N rounds (0 = off)
    separate_labeling: bool = True  # paper ablation: label in a separate call
    label_votes: int = 1  # label each text this many times; keep it only if all votes agree
    demonstrations_per_label: int = 2
    generation_topups: int = 2  # extra generation calls when the teacher returns fewer texts than asked
    gateway: GatewayConfig = field(default_factory=GatewayConfig)  # concurrency, rate limits, retries, budgets

    def __post_init__(self):
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        if self.label_votes < 1:
            raise ValueError(f"label votes must be >= 1, got {self.label_votes}")
        if self.per_round < 1:
            raise ValueError(f"per-round must be >= 1, got {self.per_round}")


Progress = Callable[..., None]


def _noop(event: str, **info: Any) -> None:
    pass


@dataclass
class Candidate:
    text: str
    intent: str
    intended_label: str | None = None
    teacher_label: str | None = None
    reject_reason: str | None = None
    embedding: np.ndarray | None = None
    student_pred: str | None = None
    student_score: float | None = None
    label_notes: list | None = None
    hash: str = field(default="")


class EvoKD:
    """Runs (or resumes) generation into `out_dir`."""

    def __init__(self, task: TaskSpec, out_dir: str | Path, config: LoopConfig, *, teacher_lm=None,
                 teacher_name: str = "", api_base: str | None = None, progress: Progress = _noop):
        self.task = task
        self.out_dir = Path(out_dir)
        self.config = config
        self.teacher_lm = teacher_lm
        self.teacher_name = teacher_name
        self.api_base = api_base
        self.progress = progress
        self.labels = task.label_names
        self.validity = ValidityFilter(self.labels, config.min_chars, config.max_chars)
        self.near_dup = NearDuplicateFilter(config.near_dup_threshold)
        self.eval_rows = task.eval_rows()
        self.seeds = task.seed_rows()
        self.student_name = config.student or ("tagger" if task.is_ner else "tfidf")
        self.target_key = "entities" if task.is_ner else "label"
        self.pred_key = "student_entities" if task.is_ner else "student_pred"

    # helpers -------------------------------------------------------------------
    def _rng(self, round_: int) -> random.Random:
        return random.Random(int(hashlib.sha256(f"{self.config.seed}|{round_}".encode()).hexdigest()[:12], 16))

    def _train(self, rows: list[dict]):
        student = make_student(self.student_name)
        student.fit([r["text"] for r in rows], [r[self.target_key] for r in rows])
        return student

    def _same(self, a, b) -> bool:
        if self.task.is_ner:
            key = lambda spans: sorted((s["start"], s["end"], s["label"]) for s in spans or [])  # noqa: E731
            return a is not None and b is not None and key(a) == key(b)
        return a == b

    def _predict(self, student, texts: list[str]) -> list[tuple[Any, float | None]]:
        """(prediction, confidence) per text; NER students give spans and no single confidence."""
        if not texts:
            return []
        if self.task.is_ner:
            return [(spans, None) for spans in student.predict(texts)]
        proba = student.predict_proba(texts)
        return [(student.labels_[int(np.argmax(row))], float(np.max(row))) for row in proba]

    def _evaluate(self, student) -> dict | None:
        if not self.eval_rows:
            return None
        pred = student.predict([r["text"] for r in self.eval_rows])
        gold = [r[self.target_key] for r in self.eval_rows]
        if self.task.is_ner:
            return entity_report(gold, list(pred), self.labels)
        return classification_report(gold, list(pred), self.labels)

    @staticmethod
    def _eval_fields(report: dict | None) -> dict:
        if report is None:
            return {"eval_n": 0, "eval_accuracy": None, "eval_macro_f1": None, "eval_entity_f1": None}
        if "accuracy" in report:
            return {"eval_n": report["n"], "eval_accuracy": report["accuracy"], "eval_macro_f1": report["macro_f1"],
                    "eval_entity_f1": None}
        return {"eval_n": report["n"], "eval_accuracy": None, "eval_macro_f1": None, "eval_entity_f1": report["f1"]}

    def _cross_predictions(self, rows: list[dict]) -> list[str | None]:
        """Out-of-fold predictions on the seeds: what the student says before it has seen each one."""
        n = len(rows)
        k = min(5, n)
        order = list(range(n))
        self._rng(0).shuffle(order)
        preds: list = [None] * n
        for fold in range(k):
            test_idx = set(order[fold::k])
            train = [rows[i] for i in range(n) if i not in test_idx]
            if self.task.is_ner:
                trainable = any(r["entities"] for r in train)
                fallback = []
            else:
                labels = {r["label"] for r in train}
                trainable = len(labels) >= 2
                fallback = next(iter(labels)) if labels else None
            if trainable:
                student = self._train(train)
                out = student.predict([rows[i]["text"] for i in sorted(test_idx)])
                for i, p in zip(sorted(test_idx), out):
                    preds[i] = p
            else:
                for i in test_idx:
                    preds[i] = fallback
        return preds

    def _demonstrations(self) -> list[dict]:
        if self.task.is_ner:  # one sentence per entity type already covers the types
            return self.seeds[: self.config.demonstrations_per_label * 4]
        per_label: dict[str, list[dict]] = {}
        for row in self.seeds:
            per_label.setdefault(row["label"], []).append(row)
        demos = []
        for label in self.labels:
            demos.extend(per_label.get(label, [])[: self.config.demonstrations_per_label])
        return demos

    # run -----------------------------------------------------------------------
    def run(self) -> list[dict]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with Store(self.out_dir / STORE_NAME) as store:
            info = store.run_info()
            if info is None:
                self._start(store)
            elif info["task_name"] != self.task.name:
                raise RunError(f"{self.out_dir}: holds a run of task '{info['task_name']}', not '{self.task.name}'; "
                               "use another --out directory")
            last = store.last_round()
            if last is None:  # killed before round 0 was committed
                self._round_zero(store)
                last = 0
            # Every teacher call goes through the gateway: paid answers are cached in this store the
            # moment they return, so a killed or budget-stopped round costs nothing to redo.
            gateway = TeacherGateway(self.teacher_lm, self.config.gateway, cache=store)
            teacher = Teacher(self.task, gateway, demonstrations=self._demonstrations(), seed=self.config.seed,
                              max_chars=min(self.config.max_chars, 300))
            student = self._train(store.samples())
            total = self.config.rounds
            self.progress("resume" if last > 0 else "start", done=last, total=total)
            for round_ in range(last + 1, total + 1):
                try:
                    student = self._round(store, teacher, student, round_)
                except BudgetExceeded as exc:
                    done = store.last_round() or 0
                    raise BudgetExceeded(
                        f"{exc}; stopped in round {round_}, rounds up to {done} are committed in {self.out_dir} "
                        f"(the paid calls of round {round_} are cached); re-run with a higher limit to continue") from None
                self._write_outputs(store)
            self._write_outputs(store)
            return store.rounds()

    def _start(self, store: Store) -> None:
        run_id = hashlib.sha256(f"{self.task.name}|{_dt.datetime.now().isoformat()}".encode()).hexdigest()[:16]
        store.create_run(run_id, self.task.to_public_dict(), self.teacher_name, self.api_base, asdict(self.config), __version__)

    def _round_zero(self, store: Store) -> None:
        started = _dt.datetime.now()
        self.progress("step", round=0, name="embedding and training on seeds")
        preds = self._cross_predictions(self.seeds)
        vectors = encode([r["text"] for r in self.seeds])
        ner = self.task.is_ner
        samples = [
            SampleRow(round=0, source="seed", text=r["text"], label=None if ner else r["label"],
                      entities=r["entities"] if ner else None, text_hash=text_hash(r["text"]), status="accepted",
                      student_pred=None if ner else p, student_entities=p if ner else None, embedding=v)
            for r, p, v in zip(self.seeds, preds, vectors)
        ]
        student = self._train(self.seeds)
        report = self._evaluate(student)
        correct = sum(self._same(p, r[self.target_key]) for p, r in zip(preds, self.seeds))
        record = RoundRecord(
            round=0, started_at=started, finished_at=_dt.datetime.now(), analysis=None,
            n_generated=0, n_accepted=len(samples), n_rejected=0, rejected_by_reason={},
            feedback_size=0, feedback_accuracy=None, batch_student_accuracy=correct / len(self.seeds),
            train_size=len(self.seeds), **self._eval_fields(report),
            prompt_tokens=0, completion_tokens=0, n_calls=0, n_failed_calls=0,
        )
        store.commit_round(record, samples, [])
        self._write_outputs(store)
        self.progress("round", record=record)

    # one round -------------------------------------------------------------------
    def _feedback(self, store: Store, round_: int) -> Feedback:
        cfg = self.config
        latest = store.samples(round=round_ - 1)
        tk, pk = self.target_key, self.pred_key
        rows = [r for r in latest if r[pk] is not None]
        if cfg.review_every and round_ > 2 and round_ % cfg.review_every == 0:
            earlier = [r for r in store.samples() if r["round"] < round_ - 1 and r["intent"] == "hard"
                       and r[pk] is not None and not self._same(r[pk], r[tk])]
            rng = self._rng(round_)
            rows += rng.sample(earlier, min(len(earlier), 4))
        wrong = [{"text": r["text"], "gold": r[tk], "pred": r[pk]} for r in rows if not self._same(r[pk], r[tk])]
        correct = [{"text": r["text"], "gold": r[tk]} for r in rows if self._same(r[pk], r[tk])]
        lines = self._ner_error_stats(rows) if self.task.is_ner else self._error_stats(rows)
        metric = "eval_entity_f1" if self.task.is_ner else "eval_accuracy"
        history = [r[metric] for r in store.rounds()]
        return Feedback(wrong=wrong, correct=correct, error_stats="\n".join(lines), score_history=history)

    def _error_stats(self, rows: list[dict]) -> list[str]:
        gold = [r["label"] for r in rows]
        pred = [r["student_pred"] for r in rows]
        lines = []
        per_label = Counter(gold)
        errors = Counter(g for g, p in zip(gold, pred) if g != p)
        for label in self.labels:
            if per_label[label]:
                lines.append(f"{label}: {errors[label]} of {per_label[label]} wrong")
            else:
                lines.append(f"{label}: no examples in the latest batch")
        for g, p, c in confusion_pairs(gold, pred):
            lines.append(f"{c}x true {g} predicted as {p}")
        return lines

    def _ner_error_stats(self, rows: list[dict]) -> list[str]:
        report = entity_report([r["entities"] for r in rows], [r["student_entities"] for r in rows], self.labels)
        lines = []
        for label in self.labels:
            v = report["per_label"].get(label)
            if v and v["support"]:
                missed = round(v["support"] * (1 - v["recall"]))
                lines.append(f"{label}: {missed} of {v['support']} entities missed, precision {v['precision']:.2f}")
            else:
                lines.append(f"{label}: no entities in the latest batch")
        return lines

    def _generate(self, teacher: Teacher, round_: int, analysis: str, previous: list[str]) -> list[Candidate]:
        cfg = self.config
        n_hard = cfg.per_round if not cfg.use_easy else math.ceil(cfg.per_round / 2)
        n_easy = cfg.per_round - n_hard
        candidates: list[Candidate] = []
        unique = {"hard": set(), "easy": set()}
        seen: set[str] = set()
        for _ in range(1 + cfg.generation_topups):
            need_hard, need_easy = n_hard - len(unique["hard"]), n_easy - len(unique["easy"])
            if need_hard <= 0 and need_easy <= 0:
                break
            need_hard, need_easy = max(need_hard, 0), max(need_easy, 0)
            if cfg.separate_labeling:
                h, e = teacher.generate_inputs(round_, analysis, previous, need_hard, need_easy)
                batch = [Candidate(t, "hard") for t in h[:need_hard]] + [Candidate(t, "easy") for t in e[:need_easy]]
            else:
                h, e = teacher.generate_labeled_inputs(round_, analysis, previous, need_hard, need_easy)
                batch = ([Candidate(t, "hard", teacher_label=lab) for t, lab in h[:need_hard]]
                         + [Candidate(t, "easy", teacher_label=lab) for t, lab in e[:need_easy]])
            # A weak teacher often copies its hard texts into the easy list. Copies stay as
            # candidates (the filter rejects and records them) but do not count toward the
            # batch, so the next top-up call asks for what is still missing.
            for c in batch:
                h_ = text_hash(c.text)
                if h_ not in seen:
                    seen.add(h_)
                    unique[c.intent].add(h_)
                candidates.append(c)
        return candidates

    def _filter(self, store: Store, candidates: list[Candidate]) -> None:
        seen = store.accepted_hashes()
        for c in candidates:
            c.hash = text_hash(c.text)
            c.reject_reason = self.validity.reason(c.text)
            if c.reject_reason is None and c.hash in seen:
                c.reject_reason = REASON_EXACT_DUP
            if c.reject_reason is None:
                seen.add(c.hash)
        alive = [c for c in candidates if c.reject_reason is None]
        if alive:
            vectors = encode([c.text for c in alive])
            keep = self.near_dup.select(vectors, store.accepted_vectors())
            for c, v, k in zip(alive, vectors, keep):
                c.embedding = v
                if not k:
                    c.reject_reason = REASON_NEAR_DUP

    def _round(self, store: Store, teacher: Teacher, student, round_: int):
        cfg = self.config
        started = _dt.datetime.now()
        self.progress("round_start", round=round_, total=cfg.rounds)
        feedback = self._feedback(store, round_)
        self.progress("step", round=round_, name="weakness analysis")
        analysis = teacher.analyze_weaknesses(round_, feedback, use_correct=cfg.correct_feedback)
        previous = [r["analysis"] for r in store.rounds() if r["analysis"]]
        # A failed analysis still leaves the code-computed statistics to aim at.
        aim = analysis or f"Error statistics of the latest batch:\n{feedback.error_stats}"
        self.progress("step", round=round_, name="generating inputs")
        candidates = self._generate(teacher, round_, aim, previous)
        self._filter(store, candidates)
        to_label = [c for c in candidates if c.reject_reason is None and c.teacher_label is None]
        if to_label:
            self.progress("step", round=round_, name=f"labeling 0/{len(to_label)}")
        labeled = teacher.label_many(
            round_, [c.text for c in to_label], cfg.label_votes, concurrency=cfg.gateway.concurrency,
            on_done=lambda i, n: self.progress("step", round=round_, name=f"labeling {i}/{n}"))
        for c, result in zip(to_label, labeled):
            if self.task.is_ner:
                if result is None:
                    c.reject_reason = REASON_NO_LABEL
                else:
                    c.teacher_label, c.label_notes = result
            else:
                c.teacher_label, c.reject_reason = result
        for c in candidates:
            if self.task.is_ner and c.reject_reason is None and isinstance(c.teacher_label, tuple):
                c.teacher_label, c.label_notes = c.teacher_label  # generated together with its spans
            if self.task.is_ner and c.reject_reason is None:
                from evokd.ner import validate_spans

                c.reject_reason = validate_spans(c.text, c.teacher_label, self.labels)
        accepted = [c for c in candidates if c.reject_reason is None]
        for c, (pred, score) in zip(accepted, self._predict(student, [c.text for c in accepted])):
            c.student_pred, c.student_score = pred, score
        self.progress("step", round=round_, name="training the student")
        train_rows = store.samples() + [{"text": c.text, self.target_key: c.teacher_label} for c in accepted]
        new_student = self._train(train_rows)
        report = self._evaluate(new_student)
        calls: list[CallRow] = teacher.drain_calls()
        rejected = Counter(c.reject_reason for c in candidates if c.reject_reason)
        batch_correct = [self._same(c.student_pred, c.teacher_label) for c in accepted]
        record = RoundRecord(
            round=round_, started_at=started, finished_at=_dt.datetime.now(), analysis=analysis,
            n_generated=len(candidates), n_accepted=len(accepted), n_rejected=len(candidates) - len(accepted),
            rejected_by_reason=dict(rejected), feedback_size=len(feedback.wrong) + len(feedback.correct),
            feedback_accuracy=(len(feedback.correct) / (len(feedback.wrong) + len(feedback.correct))
                               if feedback.wrong or feedback.correct else None),
            batch_student_accuracy=sum(batch_correct) / len(batch_correct) if batch_correct else None,
            train_size=len(train_rows), **self._eval_fields(report),
            prompt_tokens=sum(c.prompt_tokens for c in calls), completion_tokens=sum(c.completion_tokens for c in calls),
            n_calls=len(calls), n_failed_calls=sum(not c.ok for c in calls),
        )
        ner = self.task.is_ner
        samples = [
            SampleRow(round=round_, source="generated", intent=c.intent, text=c.text,
                      label=None if ner or c.reject_reason else c.teacher_label,
                      entities=c.teacher_label if ner and c.reject_reason is None else None,
                      intended_label=c.intended_label, teacher_label=None if ner else c.teacher_label,
                      student_pred=None if ner else c.student_pred, student_entities=c.student_pred if ner else None,
                      student_score=c.student_score, label_notes=c.label_notes or None,
                      status="accepted" if c.reject_reason is None else "rejected", reject_reason=c.reject_reason,
                      text_hash=c.hash or text_hash(c.text), embedding=c.embedding)
            for c in candidates
        ]
        store.commit_round(record, samples, calls)
        self.progress("round", record=record)
        return new_student

    # outputs ---------------------------------------------------------------------
    def _write_outputs(self, store: Store) -> None:
        if self.task.is_ner:
            rows = [{"id": r["id"], "text": r["text"], "entities": r["entities"], "source": r["source"],
                     "round": r["round"], "intent": r["intent"], "student_entities": r["student_entities"]}
                    for r in store.samples()]
        else:
            rows = [{"id": r["id"], "text": r["text"], "label": r["label"], "source": r["source"], "round": r["round"],
                     "intent": r["intent"], "teacher_label": r["teacher_label"], "student_pred": r["student_pred"],
                     "student_score": r["student_score"]}
                    for r in store.samples()]
        write_jsonl_atomic(self.out_dir / DATASET_NAME, rows)
        write_jsonl_atomic(self.out_dir / ROUNDS_NAME, store.rounds())
