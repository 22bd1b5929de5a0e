"""`evokd bench CONFIG.yaml`: strategies x students x datasets x random seeds on real data.

Each random seed draws its own seeds (k per label, texts of 6+ words; NER: k sentences of 8+ words
per entity type, as datasets/make_seeds.py) and its own unlabeled pool from a dataset's train split;
every cell of a dataset is scored on the same sample of its test split (macro-F1 and accuracy, or
entity F1 on NER). A cell is one `evokd generate` run on a self-contained task folder,
so any cell can be reproduced by hand with the command recorded in its cell.json.

Work dir (default runs/bench/NAME), resumable at every level:
  tasks/DATASET-sSEED/                    task.yaml, seeds.jsonl, eval.jsonl, pool.jsonl, prep.json
  cells/DATASET-sSEED/STUDENT/STRATEGY/   the run (evokd.duckdb, ...) and cell.json once finished
  ceiling/DATASET-STUDENT.json            the student trained on the whole train split
  vectors/                                MiniLM vectors of large text sets (.npy, keyed by a hash of the texts)
A finished cell (cell.json) is never run again; an unfinished one resumes after its last committed round.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io as _io
import json
import multiprocessing
import os
import platform
import random
import shlex
import statistics
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Optional

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from evokd import __version__, datadir
from evokd.errors import EvokdError, InputError
from evokd.io import read_labeled, write_json_atomic, write_jsonl_atomic, write_text_atomic
from evokd.task import TaskSpec, _format_error, load_task, read_yaml_mapping

if TYPE_CHECKING:
    from evokd.loop import LoopConfig

CELL_FILE = "cell.json"
PREP_FILE = "prep.json"
TASK_FILE = "task.yaml"
POOL_FILE = "pool.jsonl"
SCRIPTED = "scripted"  # the TEST DOUBLE teacher of evokd.teacher.scripted
SCRIPTED_NAME = "scripted-test-double"
MIN_SEED_WORDS = 6  # datasets/make_seeds.py: a seed is a full sentence, not a phrase fragment
NER_MIN_SEED_WORDS = 8  # datasets/make_seeds.py's NER seeds: sentences of 8+ tokens
EVAL_SAMPLE_SEED = 0  # one eval sample per dataset, shared by every cell
TARGET_POINTS = 2.0  # points of the headline score (macro-F1; entity F1 on NER) each target asks for
TEST_DOUBLE_NOTE = ("`scripted`, a TEST DOUBLE: it 'generates' by drawing real sentences from the cell's pool and "
                    "labels them with their gold labels, so these numbers test the harness, not a teacher")


# -- config ------------------------------------------------------------------------------------
def _all_known(value: list[str], allowed: list[str], what: str) -> list[str]:
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}; expected some of: {', '.join(allowed)}")
    return value


class DatasetEntry(BaseModel):
    """One dataset: the example task (description, labels) and the folder of its real splits
    (usually `$EVOKD_DATA/NAME`, the benchmark data folder: evokd.datadir)."""

    model_config = ConfigDict(extra="forbid")
    task: Path
    data: Path
    shots: int = Field(default=4, ge=1)  # seeds per label; NER: seed sentences per entity type
    _written: dict = PrivateAttr(default_factory=dict)  # task/data as the config wrote them

    def as_written(self, key: str, base: Path) -> str:
        """`task` or `data` as the config wrote it (`$EVOKD_DATA/...` kept), else relative to `base`."""
        return self._written.get(key) or os.path.relpath(getattr(self, key), base)

    def split(self, name: str) -> Path:
        """The data folder's `name.jsonl` (or `.jsonl.gz`); load_config has checked that it exists."""
        return datadir.split_file(self.data, name) or self.data / f"{name}.jsonl"


class BenchConfig(BaseModel):
    """A validated benchmark config. Paths are resolved relative to the YAML file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    datasets: list[DatasetEntry] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    strategies: list[str] = Field(min_length=1)
    students: list[str] = Field(default=["tfidf"], min_length=1)
    teacher: str = "local"
    rounds: int = Field(default=4, ge=1)
    per_round: int = Field(default=8, ge=1)
    eval_n: int = Field(default=500, ge=1)
    pool_size: int = Field(default=4000, ge=1)
    oracle: bool = True
    ceiling: bool = True
    label_temperature: float = Field(default=0.0, ge=0.0, le=2.0)  # as `evokd generate --label-temperature`
    label_format: Literal["plain", "json"] = "plain"  # as `evokd generate --label-format`
    path: Optional[Path] = Field(default=None, exclude=True)

    @field_validator("seeds", "strategies", "students")
    @classmethod
    def _unique(cls, value: list):
        dupes = sorted({str(v) for v in value if value.count(v) > 1})
        if dupes:
            raise ValueError(f"duplicate {dupes[0]!r}; expected each value once")
        return value

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, value: list[str]):
        from evokd.strategies import STRATEGIES

        return _all_known(value, list(STRATEGIES), "strategy")

    @field_validator("students")
    @classmethod
    def _known_students(cls, value: list[str]):
        from evokd.students import CANDIDATES

        return _all_known(value, [name for names in CANDIDATES.values() for name in names], "student")

    @field_validator("teacher")
    @classmethod
    def _teacher_string(cls, value: str):
        value = value.strip()
        if value not in ("local", SCRIPTED) and ("/" not in value or value.endswith("/")):
            raise ValueError(f"got {value!r}; expected 'local', 'scripted' (a TEST DOUBLE) or a provider/model "
                             "string such as openai/gpt-4o-mini")
        return value

    @property
    def test_double(self) -> bool:
        return self.teacher == SCRIPTED


def _fields_at(loc: tuple) -> tuple[str, ...]:
    """The fields an unknown key at `loc` could have been: a dataset entry's or the config's."""
    model = DatasetEntry if loc and loc[0] == "datasets" and len(loc) > 2 else BenchConfig
    return tuple(name for name in model.model_fields if name != "path")


def load_config(path: str | Path) -> tuple[BenchConfig, dict[str, TaskSpec]]:
    """The config and each dataset's example task (by task name); errors name the file and the field."""
    path = Path(path)
    raw = read_yaml_mapping(path, "a benchmark config YAML file")
    # Absolute but not symlink-resolved: a data folder that is a link must still read as written in
    # the results (os.path.abspath normalises `..` as written, Path.resolve would follow the link).
    base = Path(os.path.abspath(path)).parent
    written: dict[int, dict[str, str]] = {}
    for i, entry in enumerate(raw["datasets"] if isinstance(raw.get("datasets"), list) else []):
        if isinstance(entry, dict):
            for key in ("task", "data"):
                if isinstance(entry.get(key), str):
                    if datadir.refers_to_data_dir(entry[key]):
                        written.setdefault(i, {})[key] = entry[key]
                    entry[key] = str(datadir.expand(entry[key], base, source=path, field=f"datasets.{i}.{key}"))
    try:
        config = BenchConfig(**raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field, msg = _format_error(err, _fields_at(err["loc"]))
        raise InputError(path, msg, field=field) from None
    config.path = Path(os.path.abspath(path))
    for i, entry in enumerate(config.datasets):
        entry._written = written.get(i, {})
    from evokd.students import CANDIDATES

    tasks: dict[str, TaskSpec] = {}
    for i, entry in enumerate(config.datasets):
        if not entry.task.is_file():
            raise datadir.missing_file_error(entry.as_written("task", base), entry.task, source=path,
                                             field=f"datasets.{i}.task", holder="the config file")
        if not entry.data.is_dir():
            raise datadir.missing_file_error(entry.as_written("data", base), entry.data, source=path,
                                             field=f"datasets.{i}.data", holder="the config file")
        task = load_task(entry.task, check_files=False)  # its description and labels; the cells draw their own seeds
        if task.name in tasks:
            raise InputError(path, f"dataset {task.name!r} is listed twice; expected each task once", field=f"datasets.{i}.task")
        misfit = [s for s in config.students if s not in CANDIDATES[task.kind]]
        if misfit:
            raise InputError(path, f"student {misfit[0]!r} cannot learn {task.name}, a {task.kind} task; expected "
                                   f"students that fit every dataset ({task.kind}: {', '.join(CANDIDATES[task.kind])})",
                             field="students")
        rows = ('{"tokens", "tags"} or {"text", "entities"}' if task.is_ner else '{"text", "label"}')
        for split in ("train", "test"):
            if datadir.split_file(entry.data, split) is None:
                raise InputError(path, f"{entry.data} has no {split}.jsonl; expected a folder with train.jsonl and "
                                       f"test.jsonl (or .jsonl.gz) of {rows} rows", field=f"datasets.{i}.data")
        tasks[task.name] = task
    return config, tasks


# -- cell preparation --------------------------------------------------------------------------
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
            draw = draw_ner_seeds if task.is_ner else draw_seeds
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
    header = (f"# {name}: made by `evokd bench` from {_relative(task.path)} (seed {seed}); pool.jsonl is the "
              "pool of the pool strategies (id: line of train.jsonl, from 0).\n")
    write_text_atomic(folder / TASK_FILE, header + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100))


# -- jobs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One run: a dataset draw (random seed) x student x strategy."""

    dataset: str
    seed: int
    student: str
    strategy: str
    task_dir: Path
    out_dir: Path
    rounds: int
    per_round: int
    teacher: str
    oracle: bool
    vectors_dir: Path
    label_temperature: float = 0.0
    label_format: str = "plain"

    @property
    def key(self) -> str:
        return f"{self.dataset}-s{self.seed} {self.student} {self.strategy}"

    @property
    def result_path(self) -> Path:
        return self.out_dir / CELL_FILE

    def settings(self) -> dict:
        from evokd.loop import needs_teacher
        from evokd.strategies import get

        out = {"rounds": self.rounds, "per_round": self.per_round, "teacher": self.teacher, "oracle": self.oracle}
        if needs_teacher(self.loop_config()):
            out["label_temperature"] = self.label_temperature
            if not (self.oracle and get(self.strategy).needs_pool):  # oracle pool cells label nothing
                out["label_format"] = self.label_format
        return out

    def loop_config(self) -> LoopConfig:
        from evokd.loop import LoopConfig
        from evokd.strategies import get

        pool = get(self.strategy).needs_pool
        return LoopConfig(rounds=self.rounds, per_round=self.per_round, seed=self.seed, student=self.student,
                          strategy=self.strategy, pool=str(self.task_dir / POOL_FILE) if pool else None,
                          oracle=self.oracle and pool, label_temperature=self.label_temperature,
                          label_format=self.label_format)

    def command(self) -> str:
        """The `evokd generate` command that runs this cell by hand."""
        from evokd.loop import needs_teacher

        config = self.loop_config()
        args = ["evokd", "generate", _relative(self.task_dir / TASK_FILE), "--strategy", self.strategy]
        if config.pool:
            args += ["--pool", _relative(Path(config.pool))] + (["--oracle"] if config.oracle else [])
        args += ["--rounds", str(self.rounds), "--per-round", str(self.per_round), "--seed", str(self.seed),
                 "--student", self.student]
        if needs_teacher(config):
            args += ["--teacher", self.teacher, "--label-temperature", f"{self.label_temperature:g}",
                     "--label-format", self.label_format]
        return " ".join(shlex.quote(a) for a in args + ["--out", _relative(self.out_dir)])


@dataclass(frozen=True)
class Ceiling:
    """The student trained on a dataset's whole train split, scored on the cells' eval rows."""

    dataset: str
    student: str
    data_dir: Path
    task_dir: Path  # any draw's folder: its eval.jsonl is every cell's
    result_path: Path
    vectors_dir: Path

    @property
    def key(self) -> str:
        return f"{self.dataset} {self.student} ceiling"


def plan(config: BenchConfig, tasks: dict[str, TaskSpec], folders: dict[tuple[str, int], Path],
         work_dir: Path) -> list[Cell | Ceiling]:
    """Every job of the config, ceilings first (cheap with tfidf; with minilm they cache the split's vectors)."""
    from evokd.strategies import get

    # MiniLM vectors are keyed by content, so every config under the same parent folder shares them
    # (the whole sst2 / ag_news train splits take minutes to embed on 2 cores).
    vectors = work_dir.parent / "vectors"
    jobs: list[Cell | Ceiling] = []
    if config.ceiling:
        for name, entry in zip(tasks, config.datasets):
            for student in config.students:
                jobs.append(Ceiling(name, student, entry.data, folders[(name, config.seeds[0])],
                                    work_dir / "ceiling" / f"{name}-{student}.json", vectors))
    # Seed-major: every dataset and strategy gets its first draw before any gets its second, so a
    # bench stopped early (or rendered with --render-only) has comparable cells for each strategy.
    for seed in config.seeds:
        for name in tasks:
            for student in config.students:
                for strategy in config.strategies:
                    rounds = config.rounds if get(strategy).adds_samples else 0
                    jobs.append(Cell(name, seed, student, strategy, folders[(name, seed)],
                                     work_dir / "cells" / f"{name}-s{seed}" / student / strategy, rounds,
                                     config.per_round, config.teacher, config.oracle, vectors,
                                     config.label_temperature, config.label_format))
    return jobs


def _finished(job: Cell | Ceiling) -> bool:
    if not job.result_path.is_file():
        return False
    if isinstance(job, Cell):
        found = json.loads(job.result_path.read_text(encoding="utf-8"))["settings"]
        if "label_temperature" in job.settings():
            found.setdefault("label_temperature", 0.8)  # cells from before the option labeled at the teacher's 0.8
        if "label_format" in job.settings():
            found.setdefault("label_format", "json")  # cells from before the plain labeling question asked in JSON
        if found != job.settings():
            changed = next(k for k in job.settings() if found.get(k) != job.settings()[k])
            raise EvokdError(f"{job.out_dir}: finished with {changed}={found.get(changed)!r}, but the config now "
                             f"gives {job.settings()[changed]!r}; use another --work-dir (or config name), or delete it")
    return True


def cached_vectors(vectors_dir: Path, texts: list[str]) -> None:
    """Put the frozen MiniLM vectors of `texts` in the student's memo, from disk when cached there."""
    from evokd.students import minilm

    key = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:16]
    path = vectors_dir / f"minilm-{len(texts)}-{key}.npy"
    if path.is_file():
        vectors = np.load(path)
    else:
        vectors = minilm.frozen_vectors(texts)
        vectors_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.npy")
        np.save(tmp, vectors)
        os.replace(tmp, path)
    minilm._frozen_vectors.update(zip(texts, vectors))  # the memo MiniLMStudent reads


def pool_vectors(vectors_dir: Path, texts: list[str]) -> np.ndarray:
    """The store's MiniLM vectors of a pool (evokd.embed), computed once per pool and shared by its cells."""
    from evokd.embed import encode

    key = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:16]
    path = vectors_dir / f"pool-{len(texts)}-{key}.npy"
    if path.is_file():
        return np.load(path)
    vectors = encode(texts)
    vectors_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npy")
    np.save(tmp, vectors)
    os.replace(tmp, path)
    return vectors


def _teacher_lm(cell: Cell, task: TaskSpec):
    if cell.teacher == SCRIPTED:
        from evokd.teacher.scripted import scripted_lm

        # TEST DOUBLE: answers from the cell's pool of real sentences, with their gold labels.
        pool = task.read_rows(cell.task_dir / POOL_FILE, unique=False)
        return scripted_lm(pool, task.label_names, seed=cell.seed)
    from evokd.teacher.lm import make_lm

    return make_lm(cell.teacher)


def run_cell(cell: Cell) -> dict:
    """Run (or resume) one cell and write its cell.json."""
    from evokd.loop import EvoKD, needs_teacher

    start = time.perf_counter()
    config = cell.loop_config()
    task = load_task(cell.task_dir / TASK_FILE)
    if cell.student == "minilm":
        cached_vectors(cell.vectors_dir, [r["text"] for r in task.eval_rows()])
        if config.pool:
            cached_vectors(cell.vectors_dir, [r["text"] for r in read_labeled(config.pool, task.label_names)])
    uses_lm = needs_teacher(config)
    lm = _teacher_lm(cell, task) if uses_lm else None
    name = (SCRIPTED_NAME if cell.teacher == SCRIPTED else cell.teacher) if uses_lm else ""
    rounds = EvoKD(task, cell.out_dir, config, teacher_lm=lm, teacher_name=name,
                   pool_vectors=lambda texts: pool_vectors(cell.vectors_dir, texts)).run()
    n_seeds = rounds[0]["train_size"]
    scores = tuple(f"eval_{k}" for k in sorted(metrics_of(task.kind)))
    kept = ("round", "train_size", "eval_n", *scores, "n_accepted", "prompt_tokens", "completion_tokens", "n_calls")
    per_round = [{**{k: r[k] for k in kept}, "added": r["train_size"] - n_seeds, "seconds": r["seconds"]} for r in rounds]
    result = {
        "dataset": cell.dataset, "seed": cell.seed, "student": cell.student, "strategy": cell.strategy,
        "settings": cell.settings(), "test_double": cell.teacher == SCRIPTED and uses_lm, "n_seeds": n_seeds,
        **{k.removeprefix("eval_"): rounds[-1][k] for k in scores},
        "tokens": sum((r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0) for r in rounds),
        "calls": sum(r["n_calls"] or 0 for r in rounds), "seconds": sum(r["seconds"] for r in per_round),
        "wall_s": round(time.perf_counter() - start, 2), "rounds": per_round, "dir": _relative(cell.out_dir),
        "command": cell.command(),
    }
    write_json_atomic(cell.result_path, result)
    return result


def run_ceiling(job: Ceiling) -> dict:
    """Train the student on the whole train split, score it on the eval rows and write the result."""
    from evokd.metrics import classification_report, entity_report
    from evokd.students import fit_student, make_student

    task = load_task(job.task_dir / TASK_FILE)
    labels = task.label_names
    target = task.target_key
    train = task.read_rows(datadir.split_file(job.data_dir, "train") or job.data_dir / "train.jsonl", unique=False)
    eval_rows = task.eval_rows()
    texts = [r["text"] for r in train]
    if job.student == "minilm":
        cached_vectors(job.vectors_dir, texts)
        cached_vectors(job.vectors_dir, [r["text"] for r in eval_rows])
    start = time.perf_counter()
    student = fit_student(make_student(job.student), texts, [r[target] for r in train], task)
    gold, pred = [r[target] for r in eval_rows], list(student.predict([r["text"] for r in eval_rows]))
    if task.is_ner:
        report = entity_report(gold, pred, labels)
        scores = {"entity_f1": report["f1"]}
    else:
        report = classification_report(gold, pred, labels)
        scores = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
    result = {"dataset": job.dataset, "student": job.student, "n_train": len(train), "eval_n": report["n"], **scores,
              "seconds": round(time.perf_counter() - start, 2)}
    write_json_atomic(job.result_path, result)
    return result


def _run_job(job: Cell | Ceiling) -> dict:
    return run_cell(job) if isinstance(job, Cell) else run_ceiling(job)


def _worker_init() -> None:
    """Workers share the cores: one llama thread for a local teacher, one torch/BLAS thread for students."""
    for var in ("EVOKD_LOCAL_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"


Events = Callable[..., None]


def run_jobs(jobs: list[Cell | Ceiling], n_workers: int, events: Events) -> None:
    """Run the jobs in this process (n_workers 1) or in n_workers spawned processes, calling
    events("start", job=...) and events("done", job=..., result=...). The first failure stops the rest."""
    if n_workers <= 1:
        for job in jobs:
            events("start", job=job)
            events("done", job=job, result=_guarded(job))
        return
    pending = list(jobs)
    running: dict[Future, Cell | Ceiling] = {}
    # At most n_workers jobs are submitted at a time, so the running ones are known; after a failure
    # the pool lets the cells still running finish (they would resume anyway) before the error shows.
    with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init) as ex:
        try:
            while pending or running:
                while pending and len(running) < n_workers:
                    job = pending.pop(0)
                    running[ex.submit(_guarded, job)] = job
                    events("start", job=job)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    events("done", job=running.pop(future), result=future.result())
        except KeyboardInterrupt:
            # Ctrl-C (or a SIGINT sent to this process only): stop the workers now instead of waiting
            # for their cells; every committed round is in the cells' stores and a re-run resumes.
            for process in list(getattr(ex, "_processes", {}).values()):
                process.terminate()
            ex.shutdown(wait=False, cancel_futures=True)
            raise


def _ray_job(job: Cell | Ceiling, threads: int) -> dict:
    """One cell as a Ray task. Ray reuses its worker processes, and the embedded teacher is cached
    per process (evokd.teacher.local._load_llama), so a worker loads the model once for all its cells."""
    for var in ("EVOKD_LOCAL_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    task_dir = job.task_dir
    if not (task_dir / TASK_FILE).is_file():
        raise EvokdError(f"{task_dir}: not visible on this Ray node; the bench work dir must be on a filesystem "
                         "every node sees (a shared or network folder)")
    return _guarded(job)


def run_jobs_ray(jobs: list[Cell | Ceiling], events: Events, *, address: str | None = None, cpus_per_cell: int = 1,
                 max_retries: int = 3) -> None:
    """Run the jobs as Ray tasks (each declaring `cpus_per_cell` CPUs) on a cluster, or on a local Ray
    instance. Results come back to this process, which writes each cell.json as it arrives (the same
    resumable results store as the local executor). A task whose node or worker dies is retried by
    Ray up to `max_retries` times; it resumes from the rounds its cell already committed."""
    from evokd.pool import import_ray, init_ray

    ray = import_ray()
    init_ray(ray, address)
    remote = ray.remote(_ray_job).options(num_cpus=cpus_per_cell, max_retries=max_retries, retry_exceptions=False)
    refs = {}
    for job in jobs:
        refs[remote.remote(job, cpus_per_cell)] = job
        events("start", job=job)
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                job = refs[ref]
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.as_instanceof_cause()
                    if isinstance(cause, EvokdError):
                        raise cause from None
                    raise EvokdError(f"{job.key}: failed on Ray ({first_line_of(exc)}); finished cells are kept, "
                                     "re-run to continue") from None
                write_json_atomic(job.result_path, result)
                events("done", job=job, result=result)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def first_line_of(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1]


def _guarded(job: Cell | Ceiling) -> dict:
    """_run_job, with an actionable error naming the job (and keeping its exit code)."""
    try:
        return _run_job(job)
    except EvokdError as exc:
        err = EvokdError(f"{job.key}: {exc}; finished cells are kept, re-run to continue")
        err.exit_code = exc.exit_code
        raise err from None


# -- results -------------------------------------------------------------------------------------
def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


METRIC_NAMES = {"macro_f1": "macro-F1", "entity_f1": "entity F1", "accuracy": "accuracy"}


def metrics_of(kind: str) -> tuple[str, ...]:
    """A task kind's scores, the headline one (targets, gains, curves) first."""
    return ("entity_f1",) if kind == "ner" else ("macro_f1", "accuracy")


def cell_scores(cell: dict) -> str:
    """A finished cell's scores in one line, in the order of the tables' columns."""
    kind = "ner" if "entity_f1" in cell else "classification"
    return ", ".join(f"{METRIC_NAMES[k]} {cell[k]:.3f}" for k in sorted(metrics_of(kind)))


def summarize(config: BenchConfig, datasets: dict[str, str], cells: list[dict], ceilings: list[dict]) -> dict:
    """Per dataset (name -> task kind) and student: strategy rows (mean and sd over seeds of each of the
    kind's scores), learning curves, the ceiling. `metric` names the headline score: macro-F1, or
    entity F1 on NER."""
    out: dict = {}
    for name, kind in datasets.items():
        scores = metrics_of(kind)
        for student in config.students:
            rows: dict = {}
            for strategy in config.strategies:
                found = sorted((c for c in cells if (c["dataset"], c["student"], c["strategy"]) == (name, student, strategy)),
                               key=lambda c: c["seed"])
                if not found:
                    continue
                depth = max(len(c["rounds"]) for c in found)
                curve = []
                for i in range(depth):
                    at = [c["rounds"][i] for c in found if len(c["rounds"]) > i]
                    curve.append({"round": i, "n_seeds": len(at), "added": statistics.fmean(r["added"] for r in at),
                                  **{k: statistics.fmean(r[f"eval_{k}"] for r in at) for k in scores}})
                row = {"seeds": [c["seed"] for c in found], "per_seed": {str(c["seed"]): c[scores[0]] for c in found}}
                for k in sorted(scores):
                    row[k], row[f"{k}_sd"] = _mean_sd([c[k] for c in found])
                rows[strategy] = {
                    **row, "added": statistics.fmean(c["rounds"][-1]["added"] for c in found),
                    "tokens": statistics.fmean(c["tokens"] for c in found),
                    "seconds": statistics.fmean(c["seconds"] for c in found),
                    "wall_s": statistics.fmean(c["wall_s"] for c in found), "curve": curve,
                }
            if "seed-only" in rows:
                base = rows["seed-only"]
                for row in rows.values():
                    for k in scores:
                        row[f"gain_{k}_points"] = 100 * (row[k] - base[k])
            ceiling = next((c for c in ceilings if (c["dataset"], c["student"]) == (name, student)), None)
            out.setdefault(name, {})[student] = {"metric": scores[0], "strategies": rows, "ceiling": ceiling}
    return out


def _paired(a: dict, b: dict, within: set[str] | None = None) -> tuple[float | None, list[int]]:
    """Mean of a - b in points of the headline score over the random seeds both finished (a partial bench compares
    like with like), and those seeds; `within` narrows them further."""
    common = set(a["per_seed"]) & set(b["per_seed"])
    common = sorted(common if within is None else common & within, key=int)
    if not common:
        return None, []
    return statistics.fmean(100 * (a["per_seed"][k] - b["per_seed"][k]) for k in common), [int(k) for k in common]


def targets(summary: dict, students: list[str]) -> list[dict]:
    """The benchmark's targets in points of the headline score (macro-F1; entity F1 on NER), each over
    the seeds both of its strategies finished (the pool target: on every dataset)."""
    out = []
    for student in students:
        per_ds = {name: by[student]["strategies"] for name, by in summary.items() if student in by}
        metric = " / ".join(dict.fromkeys(METRIC_NAMES[by[student]["metric"]] for by in summary.values() if student in by))
        rand = {n: s for n, s in per_ds.items() if "pool-random" in s}
        gains, pool_seeds = {}, {}
        for strategy in ("pool-evokd", "pool-errors"):
            if not rand or not all(strategy in s for s in rand.values()):
                continue
            # like with like: the seeds the strategy and pool-random finished on every dataset
            common = set.intersection(*(set(s[strategy]["per_seed"]) & set(s["pool-random"]["per_seed"])
                                        for s in rand.values()))
            if common:
                gains[strategy] = statistics.fmean(_paired(s[strategy], s["pool-random"], common)[0]
                                                   for s in rand.values())
                pool_seeds[strategy] = sorted(map(int, common))
        if gains:
            best = max(gains, key=gains.get)
            out.append({"id": "pool_selection_over_random", "student": student, "target_points": TARGET_POINTS,
                        "best": best, "value": gains[best], "by_strategy": gains, "seeds_by_strategy": pool_seeds,
                        "datasets": sorted(rand),
                        "met": gains[best] >= TARGET_POINTS,
                        "what": f"best of pool-evokd / pool-errors minus pool-random, {metric} averaged over datasets"})
        for name, s in per_ds.items():
            if "evokd" in s and "static" in s:
                value, seeds = _paired(s["evokd"], s["static"])
                if value is None:
                    continue
                paper = _paired(s["evokd-paper"], s["static"])[0] if "evokd-paper" in s else None
                out.append({"id": "evokd_over_static", "student": student, "dataset": name, "target_points": TARGET_POINTS,
                            "value": value, "seeds": seeds, "evokd_paper_value": paper, "met": value >= TARGET_POINTS,
                            "what": f"evokd minus static on {name}, {METRIC_NAMES[summary[name][student]['metric']]}"})
    return out


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor() or "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def _config_dict(config: BenchConfig) -> dict:
    """The config as written: paths relative to the config file."""
    data = config.model_dump(mode="json")
    base = config.path.parent
    for entry, raw in zip(data["datasets"], config.datasets):
        entry["task"], entry["data"] = (raw.as_written(key, base) for key in ("task", "data"))
    return data


def plot_curves(result: dict, dataset: str) -> bytes:
    """PNG: the headline score (macro-F1; entity F1 on NER; mean over seeds) against added samples, a line
    per strategy, a panel per student."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend, Agg canvas

    by_student = result["summary"][dataset]
    fig = Figure(figsize=(5.2 * len(by_student), 3.8), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(by_student), squeeze=False)[0]
    for ax, (student, block) in zip(axes, by_student.items()):
        key = block.get("metric", "macro_f1")
        for strategy, row in block["strategies"].items():
            if strategy == "seed-only":
                ax.axhline(row[key], color="#666666", ls=":", label=f"seed-only: {row[key]:.3f}")
                continue
            curve = row["curve"]
            n = len(row["seeds"])
            ax.plot([p["added"] for p in curve], [p[key] for p in curve], marker="o", ms=3,
                    label=f"{strategy} ({n} seed{'s' * (n > 1)})")
        if block["ceiling"]:
            c = block["ceiling"]
            ax.axhline(c[key], color="#222222", ls="--", label=f"ceiling ({c['n_train']:,} rows): {c[key]:.3f}")
        ax.set_title(f"{dataset}: {student}", fontsize=11)
        ax.set_xlabel("added samples (train size minus seeds)")
        ax.set_ylabel(f"eval {METRIC_NAMES[key]} (mean over the finished seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _pm(mean: float, sd: float) -> str:
    return f"{mean:.4f} ± {sd:.4f}"


def _teacher_line(result: dict) -> str:
    cfg = result["config"]
    if result["test_double"]:
        return f"Teacher: **{TEST_DOUBLE_NOTE}.**"
    from evokd import strategies

    if not any(strategies.get(name).calls_teacher(cfg["oracle"]) for name in cfg["strategies"]):
        return "Teacher: none (no strategy in this config calls one)."
    return f"Teacher: `{cfg['teacher']}`."


def _student_table(student: str, block: dict) -> list[str]:
    """A student's rows: each strategy's scores (accuracy and macro-F1, or entity F1 on NER), the gain
    in the headline score over seed-only, tokens and seconds; then the whole-train-split ceiling."""
    key = block.get("metric", "macro_f1")
    shown = sorted(metrics_of("ner" if key == "entity_f1" else "classification"))
    bar = "|---" * (len(shown) + 7)
    lines = [f"### {student}", "",
             f"| strategy | seeds | added | {' | '.join(METRIC_NAMES[k] for k in shown)} | Δ {METRIC_NAMES[key]} | "
             "teacher tokens/cell | s/cell (rounds) | s/cell (wall) |", bar + "|"]
    for strategy, row in block["strategies"].items():
        gain = f"{row[f'gain_{key}_points']:+.2f}" if f"gain_{key}_points" in row else "–"
        lines.append(f"| {strategy} | {len(row['seeds'])} | {row['added']:.0f} | "
                     + "".join(f"{_pm(row[k], row[f'{k}_sd'])} | " for k in shown)
                     + f"{gain} | {row['tokens']:,.0f} | {row['seconds']:.1f} | {row['wall_s']:.1f} |")
    c = block["ceiling"]
    if c:
        base = block["strategies"].get("seed-only")
        gain = f"{100 * (c[key] - base[key]):+.2f}" if base else "–"
        lines.append(f"| ceiling: whole train split | – | {c['n_train']:,} | "
                     + "".join(f"{c[k]:.4f} | " for k in shown) + f"{gain} | 0 | – | {c['seconds']:.1f} (fit and score) |")
    return lines + [""]


def render_markdown(result: dict) -> str:
    cfg, m = result["config"], result["machine"]
    ner = any(d.get("kind") == "ner" for d in result["datasets"].values())
    only_ner = all(d.get("kind") == "ner" for d in result["datasets"].values())
    lines = [f"# evokd bench: {cfg['name']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}; evokd "
             f"{result['evokd']}; {result['date']}.", "",
             f"Command (from the project root): `{result['command']}`", "",
             _teacher_line(result), "",
             f"Each random seed ({', '.join(map(str, cfg['seeds']))}) draws its own seeds ("
             + (f"k sentences of {NER_MIN_SEED_WORDS}+ words per entity type" if only_ner else
                f"k per label, texts of {MIN_SEED_WORDS}+ words"
                + (f"; NER: k sentences of {NER_MIN_SEED_WORDS}+ words per entity type" if ner else ""))
             + f") and its own pool of {cfg['pool_size']:,} train texts (minus the seeds and the "
             f"eval texts); every cell of a dataset is scored on the same {cfg['eval_n']:,} test rows (sampled with "
             f"seed {EVAL_SAMPLE_SEED}). Strategies that add samples run {cfg['rounds']} rounds of {cfg['per_round']}; "
             "seed-only is round 0. Pool strategies take "
             + ("the pool's gold labels (oracle)." if cfg["oracle"] else "the teacher's labels."), "",
             ("Entity F1 (exact span and type, micro-averaged) is the final round's, mean ± sd over seeds; Δ is "
              "against seed-only in entity-F1 points" if only_ner else
              "Accuracy and macro-F1 are the final round's, mean ± sd over seeds; Δ is against seed-only in macro-F1 "
              "points" + ("; NER rows give entity F1 (exact span and type, micro-averaged) instead" if ner else ""))
             + "; tokens are the teacher's prompt + completion tokens per cell. Seconds per cell: the committed "
             "rounds (training, teacher calls, eval), and wall clock of the process that finished the cell (with "
             "teacher loading and pool embedding; a resumed cell counts its last run only).", ""]
    if result.get("unfinished"):
        lines += [f"**Partial results: {len(result['unfinished'])} of the config's jobs have not run yet** (rendered "
                  "with `--render-only` or `--only`; each row averages the seeds that finished, counted in its seeds "
                  "column):", "",
                  ", ".join(f"`{k}`" for k in result["unfinished"]), ""]
    lines += ["## Targets", ""]
    if result["test_double"]:
        lines += ["(Measured with the TEST DOUBLE teacher: they check the arithmetic, not EvoKD.)", ""]
    if result["targets"]:
        unit = "entity-F1 points" if only_ner else "macro-F1 points" + (", entity F1 on NER" if ner else "")
        lines += [f"| target | student | measured ({unit}) | met |", "|---|---|---|---|"]
        for t in result["targets"]:
            if t["id"] == "pool_selection_over_random":
                seeds = t.get("seeds_by_strategy", {})
                uneven = len({tuple(v) for v in seeds.values()}) > 1  # say the seeds when strategies differ
                others = ", ".join(f"{k} {v:+.2f}" + (f" on seed{'s' * (len(seeds[k]) > 1)} "
                                                       f"{', '.join(map(str, seeds[k]))}" if uneven else "")
                                   for k, v in t["by_strategy"].items())
                measured = f"{t['value']:+.2f} ({others}; over {', '.join(t['datasets'])})"
            else:
                paper = "" if t["evokd_paper_value"] is None else f"; evokd-paper {t['evokd_paper_value']:+.2f}"
                measured = f"{t['value']:+.2f} (seeds {', '.join(map(str, t['seeds']))}){paper}"
            lines.append(f"| {t['what']} ≥ {t['target_points']:g} | {t['student']} | {measured} | "
                         f"{'yes' if t['met'] else '**no**'} |")
    else:
        lines.append("None measured: the targets compare pool-evokd / pool-errors with pool-random, and evokd with "
                     "static; this config runs neither pair (or no seed finished both).")
    lines.append("")
    for name, by_student in result["summary"].items():
        ds = result["datasets"][name]
        per = ("seed sentence" if ds.get("kind") == "ner" else "seed") + "s" * (ds["shots"] > 1)
        what = "per entity type ({} types)" if ds.get("kind") == "ner" else "per label ({} labels)"
        lines += [f"## {name}", "",
                  f"{ds['shots']} {per} {what.format(ds['labels'])}, {ds['eval_n']:,} "
                  f"eval rows, pool of {ds['pool_n']:,} texts per seed.", "",
                  f"![{name} learning curves]({cfg['name']}-{name}.png)", ""]
        for block in by_student.items():
            lines += _student_table(*block)
    example = next((c for c in result["cells"] if c["rounds"][-1]["round"] > 0), next(iter(result["cells"]), None))
    if example:
        lines += ["## Reproducing a cell", "",
                  "Every cell is an `evokd generate` run on a task folder under the work dir; its cell.json holds the "
                  "per-round metrics and the command, e.g.:", "", f"    {example['command']}", ""]
        if "--teacher scripted" in example["command"]:
            lines += ["(`--teacher scripted` is the TEST DOUBLE, registered only inside `evokd bench` and the tests.)", ""]
    return "\n".join(lines)


def run_bench(config: BenchConfig, tasks: dict[str, TaskSpec], *, work_dir: Path, results_dir: Path, n_workers: int = 1,
              command: str = "", events: Events = lambda event, **info: None, run: bool = True,
              only: tuple[str, ...] = (), executor: str = "local", address: str | None = None,
              cpus_per_cell: int = 1) -> dict:
    """Prepare, run every unfinished job, then write NAME.md, NAME.json and NAME-DATASET.png; returns the paths.
    With run=False nothing runs: the results show the jobs finished so far and list the others.
    `only` limits this run to the cells of those strategies (and the ceilings)."""
    folders = prepare(config, tasks, work_dir)
    jobs = plan(config, tasks, folders, work_dir)
    todo = [job for job in jobs if not _finished(job)]
    if only:
        unknown = sorted(set(only) - set(config.strategies))
        if unknown:
            raise EvokdError(f"--only {unknown[0]}: not a strategy of this config; expected one of: "
                             f"{', '.join(config.strategies)}")
        todo = [job for job in todo if not isinstance(job, Cell) or job.strategy in only]
    events("plan", total=len(jobs), done=len(jobs) - len(todo))
    if run and executor == "ray":
        run_jobs_ray(todo, events, address=address, cpus_per_cell=cpus_per_cell)
    elif run:
        run_jobs(todo, n_workers, events)
    done = [j for j in jobs if j.result_path.is_file()]
    unfinished = [j.key for j in jobs if not j.result_path.is_file()]
    # each cell's command as evokd spells it now (its settings match, see _finished): a cell from before an
    # option existed then reproduces with that option's old value rather than today's default
    cells = [{**json.loads(j.result_path.read_text(encoding="utf-8")), "command": j.command()}
             for j in done if isinstance(j, Cell)]
    ceilings = [json.loads(j.result_path.read_text(encoding="utf-8")) for j in done if isinstance(j, Ceiling)]
    datasets = {}
    for name, entry in zip(tasks, config.datasets):
        folder = folders[(name, config.seeds[0])]
        datasets[name] = {"kind": tasks[name].kind, "shots": entry.shots, "labels": len(tasks[name].labels),
                          "eval_n": sum(1 for _ in (folder / "eval.jsonl").open(encoding="utf-8")),
                          "pool_n": sum(1 for _ in (folder / POOL_FILE).open(encoding="utf-8"))}
    summary = summarize(config, {name: task.kind for name, task in tasks.items()}, cells, ceilings)
    result = {
        "name": config.name, "command": command, "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "evokd": __version__, "machine": machine(), "config": _config_dict(config), "test_double": config.test_double,
        "work_dir": _relative(work_dir), "datasets": datasets, "targets": targets(summary, config.students),
        "summary": summary, "ceilings": ceilings, "cells": cells, "unfinished": unfinished,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": results_dir / f"{config.name}.md", "json": results_dir / f"{config.name}.json"}
    for name in tasks:
        paths[f"png:{name}"] = results_dir / f"{config.name}-{name}.png"
        tmp = paths[f"png:{name}"].with_name(f".{config.name}-{name}.{os.getpid()}.png")
        tmp.write_bytes(plot_curves(result, name))
        os.replace(tmp, paths[f"png:{name}"])
    write_json_atomic(paths["json"], result)
    write_text_atomic(paths["md"], render_markdown(result))
    return {"paths": {k: str(v) for k, v in paths.items()}, "jobs": len(jobs), "ran": len(todo) if run else 0,
            "unfinished": len(unfinished)}
