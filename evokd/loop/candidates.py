"""Steps 4-5 of a round: the filters every candidate text passes (validity, exact and near
duplicates) and the labels it gets (the teacher's separate labeling call, the intended class, or
a label it already carries: a seed's, the pool's own with --oracle, or one generated with it).

Pool texts are the user's real data, read with the checks of training data (`evokd.io`): the
validity filter, written for what a teacher invents (length bounds, prompt leaks), does not judge
them, and a long one is cut for the teacher's labeling prompt (`TEACHER_TEXT_CHARS`), not refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from evokd.embed import encode
from evokd.io import cut_text
from evokd.filters import (REASON_EXACT_DUP, REASON_LOW_CONFIDENCE, REASON_NEAR_DUP, REASON_OFF_INTENT,
                           NearDuplicateFilter, ValidityFilter, text_hash)
from evokd.loop.config import LoopConfig
from evokd.loop.state import RunState
from evokd.strategies import Strategy
from evokd.task_kinds import TaskKind

TEACHER_TEXT_CHARS = 2_000  # a longer text (a pool text) is cut to this for the teacher's labeling prompt


@dataclass
class Candidate:
    """One text a round considered: where it came from, what label it got, and why it was rejected (if it was)."""

    text: str
    intent: str  # hard | easy | varied | paraphrase | pool
    intended_label: str | None = None
    teacher_label: Any = None  # the answer: a label, or NER spans (a (spans, notes) pair while generated with it)
    reject_reason: str | None = None
    embedding: np.ndarray | None = None
    student_pred: Any = None
    student_score: float | None = None
    label_notes: list | None = None
    hash: str = field(default="")
    labeler: str | None = None  # teacher | intent | seed | oracle
    query: str | None = None  # pool mode: the generated text this pool text was retrieved for
    pool_id: int | None = None
    teacher_confidence: float | None = None  # the teacher's probability of its label, when it gave one


class CandidateFilter:
    """Validity, then exact duplicates (normalised-text hash), then near duplicates (MiniLM cosine)
    against the run's accepted samples and the round's earlier accepted candidates."""

    def __init__(self, labels: list[str], config: LoopConfig):
        self.validity = ValidityFilter(labels, config.min_chars, config.max_chars)
        self.near_dup = NearDuplicateFilter(config.near_dup_threshold)

    def apply(self, state: RunState, candidates: list[Candidate], prior: list[Candidate] = ()) -> None:
        seen = state.hashes | {c.hash for c in prior if c.reject_reason is None}
        for c in candidates:
            if c.reject_reason is not None:
                continue
            c.hash = text_hash(c.text)
            c.reject_reason = self.validity.reason(c.text) if c.pool_id is None else None
            if c.reject_reason is None and c.hash in seen:
                c.reject_reason = REASON_EXACT_DUP
            if c.reject_reason is None:
                seen.add(c.hash)
        alive = [c for c in candidates if c.reject_reason is None]
        if alive:
            todo = [c for c in alive if c.embedding is None]
            for c, v in zip(todo, encode([c.text for c in todo])):
                c.embedding = v
            earlier = [c.embedding for c in prior if c.reject_reason is None and c.embedding is not None]
            existing = state.vectors
            if earlier:
                existing = np.vstack([existing, np.stack(earlier)])
            keep = self.near_dup.select(np.stack([c.embedding for c in alive]), existing)
            for c, k in zip(alive, keep):
                if not k:
                    c.reject_reason = REASON_NEAR_DUP


def needs_labeling(candidates: list[Candidate], config: LoopConfig) -> list[Candidate]:
    """The candidates that passed the filters and still need the teacher's label. Without separate
    labeling a text written for a class takes that class (labeler "intent")."""
    alive = [c for c in candidates if c.reject_reason is None and c.teacher_label is None]
    if not config.separate_labeling:
        for c in alive:
            if c.intended_label is not None:
                c.teacher_label, c.labeler = c.intended_label, "intent"
        alive = [c for c in alive if c.teacher_label is None]
    return alive


def label_candidates(teacher, round_: int, candidates: list[Candidate], config: LoopConfig, strategy: Strategy,
                     rules: TaskKind, progress: Callable[..., None]) -> None:
    """Labels for the texts that passed the filters (see `needs_labeling`); with the strategy's
    agreement switch a text written for a class is kept only when the teacher names that class, and
    with `min_confidence` only when the teacher gave its label at least that probability. A text over
    TEACHER_TEXT_CHARS is labeled by its cut (`evokd.io.cut_text`); a classification sample keeps the
    whole text (the student's encoder reads as much as it can), a NER sample becomes the cut text,
    so that its spans cover all of it."""
    alive = needs_labeling(candidates, config)
    if not alive:
        return
    for c in alive:
        if rules.target_key != "label" and len(c.text) > TEACHER_TEXT_CHARS:
            c.text = cut_text(c.text, TEACHER_TEXT_CHARS)
            c.hash = text_hash(c.text)
    progress("step", round=round_, name=f"labeling 0/{len(alive)}")
    labeled = teacher.label_many(round_, [cut_text(c.text, TEACHER_TEXT_CHARS) for c in alive], config.label_votes,
                                 concurrency=config.gateway.concurrency,
                                 on_done=lambda i, n: progress("step", round=round_, name=f"labeling {i}/{n}"))
    for c, result in zip(alive, labeled):
        c.labeler = "teacher"
        c.teacher_label, c.label_notes, c.reject_reason, c.teacher_confidence = teacher.read_label(result)
        if (c.reject_reason is None and config.min_confidence is not None and c.teacher_confidence is not None
                and c.teacher_confidence < config.min_confidence):
            c.reject_reason = REASON_LOW_CONFIDENCE
        if (c.reject_reason is None and strategy.agreement and c.intended_label is not None
                and c.teacher_label != c.intended_label):
            c.reject_reason = REASON_OFF_INTENT


UNCONFIRMED_ASKED, UNCONFIRMED_SHARE = 5, 0.5  # 5+ texts written for a label, fewer than half labeled with it


def unconfirmed_labels(samples: list[dict]) -> list[tuple[str, int, int]]:
    """(label, confirmed, written) for each label the teacher rarely gives the texts it wrote for it.

    `samples`: stored rows of a run whose texts were written for a class (`intended_label`) and then
    labeled in the teacher's separate call (`teacher_label`). When the labeling call gives a label to
    fewer than half of 5+ texts written for it, the teacher does not recognise that label in what it
    reads: the run gets few rows of it, and its labels for real texts of it are likely wrong too
    (the embedded teacher and ag_news's Sci/Tech). Known without gold labels, so the run can say it."""
    written: dict[str, int] = {}
    confirmed: dict[str, int] = {}
    for s in samples:
        if s.get("intended_label") is None or s.get("teacher_label") is None:
            continue
        label = s["intended_label"]
        written[label] = written.get(label, 0) + 1
        confirmed[label] = confirmed.get(label, 0) + (s["teacher_label"] == label)
    return [(label, confirmed[label], n) for label, n in written.items()
            if n >= UNCONFIRMED_ASKED and confirmed[label] < UNCONFIRMED_SHARE * n]


def settle_answers(candidates: list[Candidate], rules: TaskKind, labels: list[str]) -> None:
    """Unpack answers generated together with their notes, and reject an accepted answer the
    student cannot learn from (NER: spans off the text or off token boundaries)."""
    for c in candidates:
        if c.reject_reason is None and isinstance(c.teacher_label, tuple):
            c.teacher_label, c.label_notes = c.teacher_label  # generated together with its spans
        if c.reject_reason is None:
            c.reject_reason = rules.check_answer(c.text, c.teacher_label, labels)
