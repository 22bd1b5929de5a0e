"""The data an optimisation learns from and is scored on: seeds and dev rows split and turned into examples."""

from __future__ import annotations

import random

import dspy

from evokd.task import TaskSpec
from evokd.teacher.answers import ANSWERS


def interleave_by_label(rows: list[dict], seed: int = 0) -> list[dict]:
    """Rows shuffled, then taken one label at a time, so any prefix covers the labels evenly."""
    by_label: dict[str, list[dict]] = {}
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    for row in shuffled:
        by_label.setdefault(str(row.get("label")), []).append(row)
    out: list[dict] = []
    queues = [by_label[k] for k in sorted(by_label)]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def split_data(task: TaskSpec, seeds: list[dict], dev: list[dict], seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, validation): seeds plus every other dev row to learn from, the other dev rows to
    score on. Without a dev slice both are the seeds (the sidecar then says the score is optimistic)."""
    if not dev:
        return list(seeds), list(seeds)
    interleave = (lambda rows: interleave_by_label(rows, seed)) if task.rules.one_label_per_text else list
    dev = interleave(dev)
    train = list(seeds) + dev[0::2]
    return interleave(train), dev[1::2]


def label_examples(task: TaskSpec, rows: list[dict]) -> list[dspy.Example]:
    """The labeling step's training examples: each row's text with its gold answer (evokd.teacher.answers)."""
    return [ANSWERS[task.kind].example(r) for r in rows]
