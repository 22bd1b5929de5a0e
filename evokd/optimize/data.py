"""The data an optimisation learns from and is scored on: seeds and dev rows split and turned into examples."""

from __future__ import annotations

import random

import dspy

from evokd.task import TaskSpec


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
    dev = dev if task.is_ner else interleave_by_label(dev, seed)
    train = list(seeds) + dev[0::2]
    return (train if task.is_ner else interleave_by_label(train, seed)), dev[1::2]


def _mentions(row: dict) -> list[dict]:
    return [{"text": row["text"][s["start"]:s["end"]], "type": s["label"]} for s in row.get("entities") or []]


def label_examples(task: TaskSpec, rows: list[dict]) -> list[dspy.Example]:
    if task.is_ner:
        return [dspy.Example(text=r["text"], entities=_mentions(r), gold=r["entities"]).with_inputs("text") for r in rows]
    return [dspy.Example(text=r["text"], label=r["label"]).with_inputs("text") for r in rows]
