"""Metrics computed by code, with the text feedback GEPA reads: labeling accuracy / entity F1, and the
yield of generation batches."""

from __future__ import annotations

from collections import Counter
from typing import Callable

import dspy

from evokd.filters import NearDuplicateFilter, ValidityFilter, clean_generated
from evokd.teacher.answers import ANSWERS
from evokd.optimize.config import _quiet
from evokd.task import TaskSpec


def _feedback_result(score: float, feedback: str, pred_name) -> float | dspy.Prediction:
    # GEPA asks with the name of the predictor it is improving and uses the text feedback; every
    # other optimiser wants the number.
    return dspy.Prediction(score=score, feedback=feedback) if pred_name is not None else score


class LabelMetric:
    """Accuracy (classification) or entity F1 (NER) of one labeling answer against gold."""

    def __init__(self, task: TaskSpec, on_call: Callable[[], None] = _quiet):
        self.task = task
        self.on_call = on_call

    def score(self, example, pred) -> tuple[float, str]:
        """(score, feedback for the optimiser) of one labeling answer (evokd.teacher.answers)."""
        return ANSWERS[self.task.kind].judge(example, pred, self.task.label_names)

    def __call__(self, example, pred, trace=None, pred_name=None, pred_trace=None):
        self.on_call()
        score, feedback = self.score(example, pred)
        if trace is not None and pred_name is None:  # bootstrapping a demo: keep only right answers
            return score >= 1.0
        return _feedback_result(score, feedback, pred_name)


class YieldMetric:
    """Yield of one generation batch: of the `n` texts asked for, the fraction that are valid, new
    (not a near-duplicate of the task's data or of each other), labeled as intended by the
    teacher's separate labeling step, and misclassified (hard) / classified right (easy) by the
    student. The labeling calls of the check do not enter the optimiser's trace."""

    def __init__(self, task: TaskSpec, teacher, student, known_vectors, *, near_dup: float = 0.9,
                 max_chars: int = 1000, on_call: Callable[[], None] = _quiet):
        self.task = task
        self.teacher = teacher
        self.student = student
        self.known = known_vectors
        self.near_dup = NearDuplicateFilter(near_dup)
        self.validity = ValidityFilter(task.label_names, max_chars=max_chars)
        self.on_call = on_call

    def score(self, example, pred) -> tuple[float, str]:
        from evokd.embed import encode

        n = max(1, int(example.n))
        texts = [t for t in (clean_generated(x) for x in (getattr(pred, "texts", None) or [])) if t][:n]
        problems: Counter = Counter()
        valid = []
        for t in texts:
            reason = self.validity.reason(t)
            if reason:
                problems[reason] += 1
            else:
                valid.append(t)
        fresh = []
        if valid:
            keep = self.near_dup.select(encode(valid), self.known)
            fresh = [t for t, k in zip(valid, keep) if k]
            problems["near_duplicate"] += len(valid) - len(fresh)
        good = 0
        target = example.target
        with dspy.context(trace=None):
            labels = [self.teacher.label_vote(0, t) for t in fresh]
        self.teacher.drain_calls()
        preds = list(self.student.predict(fresh)) if fresh else []
        for t, lab, p in zip(fresh, labels, preds):
            if lab != target:
                problems["labeled_otherwise"] += 1
            elif example.kind == "hard" and p == target:
                problems["student_right_on_hard"] += 1
            elif example.kind == "easy" and p != target:
                problems["student_wrong_on_easy"] += 1
            else:
                good += 1
        if len(texts) < n:
            problems["missing"] += n - len(texts)
        score = good / n
        detail = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in problems.items() if v) or "none"
        return score, (f"{good} of {n} {example.kind} texts for {target} were usable. Problems: {detail}. Write exactly "
                       f"{n} distinct, realistic texts that clearly belong to {target}"
                       + (" and that a weak classifier would get wrong." if example.kind == "hard" else "."))

    def __call__(self, example, pred, trace=None, pred_name=None, pred_trace=None):
        self.on_call()
        score, feedback = self.score(example, pred)
        if trace is not None and pred_name is None:
            return score >= 0.5
        return _feedback_result(score, feedback, pred_name)
