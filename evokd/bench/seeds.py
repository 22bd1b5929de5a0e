"""The task folders of a bench, one per (dataset, random seed): the drawn seeds (k per label, or k
sentences per entity type), the eval sample every cell of a dataset shares, and the pool (prepare)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import yaml

from evokd.bench.config import (EVAL_SAMPLE_SEED, MIN_SEED_WORDS, NER_MIN_SEED_WORDS, POOL_FILE, PREP_FILE, TASK_FILE,
                                BenchConfig)
from evokd.errors import EvokdError, InputError
from evokd.io import write_json_atomic, write_jsonl_atomic, write_text_atomic
from evokd.task import TaskSpec


def _relative(path: Path) -> str:
    """A path as the user would type it from here: relative under the current directory, else absolute."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def draw_seeds(train: list[dict], labels: list[str], per_label: int, seed: int) -> list[dict]:
    """`per_label` distinct texts of 6+ words per label (benchmarks/students.py's draw, over distinct texts)."""
    rng = random.Random(seed)
    out: list[dict] = []
    for label in sorted(labels):
        texts = list(dict.fromkeys(r["text"] for r in train if r["label"] == label and len(r["text"].split()) >= MIN_SEED_WORDS))
        if len(texts) < per_label:
            raise ValueError(f"label {label!r} has {len(texts)} train texts of {MIN_SEED_WORDS}+ words; expected at "
                             f"least {per_label} (shots)")
        out += [{"text": t, "label": label} for t in rng.sample(texts, per_label)]
    return out


def draw_ner_seeds(train: list[dict], types: list[str], per_type: int, seed: int) -> list[dict]:
    """`per_type` distinct sentences of 8+ words that contain each entity type, types in sorted order
    (datasets/make_seeds.py's NER draw); a sentence drawn for one type is not drawn again for another."""
    rng = random.Random(seed)
    out: list[dict] = []
    for etype in sorted(types):
        taken = {r["text"] for r in out}
        found: dict[str, dict] = {}
        for r in train:
            if (r["text"] not in taken and len(r["text"].split()) >= NER_MIN_SEED_WORDS
                    and any(e["label"] == etype for e in r["entities"])):
                found.setdefault(r["text"], r)
        if len(found) < per_type:
            raise ValueError(f"entity type {etype!r} has {len(found)} train sentences of {NER_MIN_SEED_WORDS}+ words "
                             f"that contain it; expected at least {per_type} (shots)")
        out += [{"text": t, "entities": found[t]["entities"]} for t in rng.sample(sorted(found), per_type)]
    return out


SEED_DRAWS = {"classification": draw_seeds, "ner": draw_ner_seeds}  # task kind -> how its seeds are drawn


def prepare(config: BenchConfig, tasks: dict[str, TaskSpec], work_dir: Path) -> dict[tuple[str, int], Path]:
    """Write the task folder of every (dataset, seed) that lacks one; (dataset, seed) -> folder."""
    out: dict[tuple[str, int], Path] = {}
    for i, (name, entry) in enumerate(zip(tasks, config.datasets)):
        task = tasks[name]
        fingerprint = {"data": entry.as_written("data", config.path.parent), "shots": entry.shots, "eval_n": config.eval_n,
                       "pool_size": config.pool_size, "eval_seed": EVAL_SAMPLE_SEED}
        folders = {seed: work_dir / "tasks" / f"{name}-s{seed}" for seed in config.seeds}
        todo = [seed for seed, folder in folders.items() if not _prepared(folder, fingerprint)]
        if todo:
            labels = task.label_names
            train = task.read_rows(entry.split("train"), unique=False)
            test = task.read_rows(entry.split("test"), unique=False)
            eval_rows = random.Random(EVAL_SAMPLE_SEED).sample(test, min(config.eval_n, len(test)))
            draw = SEED_DRAWS[task.kind]
            for seed in todo:
                try:
                    seeds = draw(train, labels, entry.shots, seed)
                except ValueError as exc:
                    raise InputError(config.path, str(exc), field=f"datasets.{i}.shots") from None
                _write_task(folders[seed], task, f"{name}-s{seed}", seeds, eval_rows, train, config.pool_size, seed)
                write_json_atomic(folders[seed] / PREP_FILE, fingerprint)
        out.update({(name, seed): folder for seed, folder in folders.items()})
    return out


def _prepared(folder: Path, fingerprint: dict) -> bool:
    path = folder / PREP_FILE
    if not path.is_file():
        return False
    found = json.loads(path.read_text(encoding="utf-8"))
    if found != fingerprint:
        changed = next(k for k in fingerprint if found.get(k) != fingerprint[k])
        raise EvokdError(f"{folder}: drawn with {changed}={found.get(changed)!r}, but the config now gives "
                         f"{fingerprint[changed]!r}; use another --work-dir (or config name), or delete it")
    return True


def _write_task(folder: Path, task: TaskSpec, name: str, seeds: list[dict], eval_rows: list[dict],
                train: list[dict], pool_size: int, seed: int) -> None:
    """A self-contained task folder; the pool is train minus the seeds and the eval texts, distinct texts only."""
    folder.mkdir(parents=True, exist_ok=True)
    taken = {r["text"] for r in seeds} | {r["text"] for r in eval_rows}
    first: dict[str, int] = {}
    for i, r in enumerate(train):
        if r["text"] not in taken:
            first.setdefault(r["text"], i)
    rng = random.Random(f"pool|{seed}")
    picked = sorted(rng.sample(sorted(first.values()), min(pool_size, len(first))))
    target = task.target_key
    write_jsonl_atomic(folder / "seeds.jsonl", seeds)
    write_jsonl_atomic(folder / "eval.jsonl", [{"text": r["text"], target: r[target]} for r in eval_rows])
    write_jsonl_atomic(folder / POOL_FILE, [{"id": i, "text": train[i]["text"], target: train[i][target]} for i in picked])
    spec = {"name": name, "kind": task.kind, "language": task.language, "description": task.description,
            "labels": {label.name: label.description for label in task.labels}, "seeds": "seeds.jsonl",
            "eval": "eval.jsonl"}
    if task.attributes:
        spec["attributes"] = task.attributes
    header = (f"# {name}: made by `evokd bench` from {_relative(task.path)} (seed {seed}); pool.jsonl is the "
              "pool of the pool strategies (id: line of train.jsonl, from 0).\n")
    write_text_atomic(folder / TASK_FILE, header + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100))
