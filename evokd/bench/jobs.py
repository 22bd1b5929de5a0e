"""The jobs of a bench: a Cell (one `evokd generate` run: dataset draw x student x strategy), a
Ceiling (the student on the whole train split) or a TeacherScore (the teacher labeling a draw's eval
rows itself); planning them, telling finished ones, running one in this process (run_cell,
run_ceiling, run_teacher_score), and the on-disk cache of MiniLM vectors they share."""

from __future__ import annotations

import functools
import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evokd import datadir
from evokd.bench.config import (CELL_FILE, POOL_FILE, SCRIPTED, SCRIPTED_NAME, TASK_FILE, TEACHER_DIR, BenchConfig,
                                metrics_of)
from evokd.bench.seeds import _relative
from evokd.errors import EvokdError
from evokd.io import read_labeled, write_json_atomic
from evokd.noise import DEFAULT_NOISE
from evokd.task import TaskSpec, load_task
from evokd.vector_cache import cached, remember_vectors

if TYPE_CHECKING:
    from evokd.loop import LoopConfig


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
    noise: str = DEFAULT_NOISE  # how the student weighs teacher labels (`--noise`)
    max_minutes: float | None = None  # time budget of a cell that calls a teacher (`--max-minutes`)
    calibrate_labels: bool = True  # pool cells the teacher labels: batch calibration (`--calibrate-labels`)
    row: str = ""  # its row in the tables (BenchConfig.row_name); the strategy's name when empty

    @property
    def key(self) -> str:
        return f"{self.dataset}-s{self.seed} {self.student} {self.row or self.strategy}"

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
            if get(self.strategy).labels_by_teacher(self.oracle):
                out["noise"] = self.noise
            if self.calibrate_labels and self.calibrates():  # cells from before the switch took raw labels
                out["calibrate_labels"] = True
            if self.max_minutes is not None:
                out["max_minutes"] = self.max_minutes
        return out

    def calibrates(self) -> bool:
        """Whether `calibrate_labels` applies: the teacher labels the pool texts this cell takes, with a
        label per text (classification; a NER answer is not a label distribution)."""
        from evokd.strategies import get

        spec = get(self.strategy)
        return spec.needs_pool and spec.labels_by_teacher(self.oracle) and _labeled_by_votes(self.task_dir)

    def loop_config(self) -> LoopConfig:
        from evokd.loop import LoopConfig
        from evokd.strategies import get

        pool = get(self.strategy).needs_pool
        return LoopConfig(rounds=self.rounds, per_round=self.per_round, seed=self.seed, student=self.student,
                          strategy=self.strategy, pool=str(self.task_dir / POOL_FILE) if pool else None,
                          oracle=self.oracle and pool, label_temperature=self.label_temperature,
                          label_format=self.label_format, noise=self.noise, max_minutes=self.max_minutes,
                          calibrate_labels=self.calibrate_labels,
                          eval_guard=False)  # the eval rows are the bench's test rows: picking rounds on them is not allowed

    def command(self) -> str:
        """The `evokd generate` command that runs this cell by hand."""
        from evokd.loop import needs_teacher
        from evokd.strategies import get

        config = self.loop_config()
        args = ["evokd", "generate", _relative(self.task_dir / TASK_FILE), "--strategy", self.strategy]
        if config.pool:
            args += ["--pool", _relative(Path(config.pool))] + (["--oracle"] if config.oracle else [])
        args += ["--rounds", str(self.rounds), "--per-round", str(self.per_round), "--seed", str(self.seed),
                 "--student", self.student]
        if get(self.strategy).adds_samples:
            args += ["--no-eval-guard"]
        if needs_teacher(config):
            args += ["--teacher", self.teacher, "--label-temperature", f"{self.label_temperature:g}",
                     "--label-format", self.label_format]
            if get(self.strategy).labels_by_teacher(self.oracle):
                args += ["--noise", self.noise]
            if self.calibrates() and not self.calibrate_labels:
                args += ["--no-calibrate-labels"]
            if self.max_minutes is not None:
                args += ["--max-minutes", f"{self.max_minutes:g}"]
        return " ".join(shlex.quote(a) for a in args + ["--out", _relative(self.out_dir)])


@functools.lru_cache(maxsize=None)
def _labeled_by_votes(task_dir: Path) -> bool:
    """Whether the draw's task labels a text with one label (classification), read from its task.yaml."""
    return load_task(task_dir / TASK_FILE).rules.labeled_by_votes


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


@dataclass(frozen=True)
class TeacherScore:
    """The teacher labeling every eval row of a dataset draw itself, asked as `cell` (that draw's first
    cell that calls the teacher) asks: the draw's seeds as demonstrations, label temperature and format."""

    cell: Cell
    result_path: Path

    @property
    def dataset(self) -> str:
        return self.cell.dataset

    @property
    def seed(self) -> int:
        return self.cell.seed

    @property
    def task_dir(self) -> Path:
        return self.cell.task_dir

    @property
    def key(self) -> str:
        return f"{self.dataset}-s{self.seed} teacher"

    def settings(self) -> dict:
        config = self.cell.loop_config()
        return {"teacher": self.cell.teacher, "label_temperature": config.label_temperature,
                "label_format": config.label_format, "demonstrations_per_label": config.demonstrations_per_label}


Job = Cell | Ceiling | TeacherScore


def plan(config: BenchConfig, tasks: dict[str, TaskSpec], folders: dict[tuple[str, int], Path],
         work_dir: Path) -> list[Job]:
    """Every job of the config: ceilings first (cheap with tfidf; with minilm they cache the split's vectors),
    then each random seed's cells, its teacher rows (with `teacher_row`) after them."""
    from evokd.strategies import get

    # MiniLM vectors are keyed by content, so every config under the same parent folder shares them
    # (the whole sst2 / ag_news train splits take minutes to embed on 2 cores).
    vectors = work_dir.parent / "vectors"
    jobs: list[Job] = []
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
                    for noise in config.noise_modes(strategy):
                        row = config.row_name(strategy, noise)
                        folder = strategy if row == strategy else f"{strategy}+noise-{noise}"
                        jobs.append(Cell(name, seed, student, strategy, folders[(name, seed)],
                                         work_dir / "cells" / f"{name}-s{seed}" / student / folder, rounds,
                                         config.per_round, config.teacher, config.oracle, vectors,
                                         config.label_temperature, config.label_format, noise,
                                         config.max_minutes, config.calibrate_labels, row))
        if config.teacher_row:
            for name in tasks:
                asking = next((j for j in jobs if isinstance(j, Cell) and (j.dataset, j.seed) == (name, seed)
                               and get(j.strategy).calls_teacher(j.oracle)), None)
                if asking is not None:
                    jobs.append(TeacherScore(asking, work_dir / TEACHER_DIR / f"{name}-s{seed}.json"))
    return jobs


def _finished(job: Job) -> bool:
    """Whether the job's result is on disk; raises when it was made with other settings than the config's."""
    if not job.result_path.is_file() or isinstance(job, Ceiling):
        return job.result_path.is_file()
    found, wanted = json.loads(job.result_path.read_text(encoding="utf-8"))["settings"], job.settings()
    if isinstance(job, Cell):
        if "label_temperature" in wanted:
            found.setdefault("label_temperature", 0.8)  # cells from before the option labeled at the teacher's 0.8
        if "label_format" in wanted:
            found.setdefault("label_format", "json")  # cells from before the plain labeling question asked in JSON
        if "noise" in wanted:
            found.setdefault("noise", "none")  # cells from before --noise trained on the teacher's labels plainly
    if found != wanted:
        changed = next(k for k in wanted if found.get(k) != wanted[k])
        where = job.out_dir if isinstance(job, Cell) else job.result_path
        raise EvokdError(f"{where}: finished with {changed}={found.get(changed)!r}, but the config now gives "
                         f"{wanted[changed]!r}; use another --work-dir (or config name), or delete it")
    return True


def cached_vectors(vectors_dir: Path, texts: list[str]) -> None:
    """Put the frozen MiniLM vectors of `texts` in the student's memo, from disk when cached there."""
    from evokd.students.encoders import MINILM

    remember_vectors(vectors_dir, texts, MINILM)


def pool_vectors(vectors_dir: Path, texts: list[str]) -> np.ndarray:
    """The store's MiniLM vectors of a pool (evokd.embed), computed once per pool and shared by its cells."""
    from evokd.embed import EMBED_DIM, encode

    return cached(vectors_dir, "pool", texts, EMBED_DIM, encode)


def _teacher_lm(cell: Cell, task: TaskSpec, *, knows_eval: bool = False):
    if cell.teacher == SCRIPTED:
        from evokd.teacher.scripted import scripted_lm

        # TEST DOUBLE: answers from the cell's pool of real sentences, with their gold labels (and from the
        # eval rows, with theirs, where it stands in for the teacher labeling them: knows_eval).
        pool = task.read_rows(cell.task_dir / POOL_FILE, unique=False) + (task.eval_rows() if knows_eval else [])
        return scripted_lm(pool, task.label_names, seed=cell.seed)
    from evokd.teacher.lm import make_lm

    return make_lm(cell.teacher)


def run_cell(cell: Cell) -> dict:
    """Run (or resume) one cell and write its cell.json."""
    from evokd.loop import RoundRunner, needs_teacher

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
    runner = RoundRunner(task, cell.out_dir, config, teacher_lm=lm, teacher_name=name,
                         pool_vectors=lambda texts: pool_vectors(cell.vectors_dir, texts))
    rounds = runner.run()  # with --max-minutes: the rounds it committed in its time
    n_seeds = rounds[0]["train_size"]
    scores = tuple(f"eval_{k}" for k in sorted(metrics_of(task.kind)))
    kept = ("round", "train_size", "eval_n", *scores, "n_accepted", "prompt_tokens", "completion_tokens", "n_calls")
    per_round = [{**{k: r[k] for k in kept}, "added": r["train_size"] - n_seeds, "seconds": r["seconds"]} for r in rounds]
    result = {
        "dataset": cell.dataset, "seed": cell.seed, "student": cell.student, "strategy": cell.strategy,
        "row": cell.row or cell.strategy,
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
    report = task.rules.report(gold, pred, labels)
    scores = task.rules.scores(report)
    result = {"dataset": job.dataset, "student": job.student, "n_train": len(train), "eval_n": report["n"], **scores,
              "seconds": round(time.perf_counter() - start, 2)}
    write_json_atomic(job.result_path, result)
    return result


def run_teacher_score(job: TeacherScore) -> dict:
    """The teacher labels the draw's eval rows, asked as the draw's cells ask; write its scores."""
    from dataclasses import asdict

    from evokd.compare import score_teacher, teacher_labels

    task = load_task(job.task_dir / TASK_FILE)
    rows = task.eval_rows()
    lm = _teacher_lm(job.cell, task, knows_eval=True)
    start = time.perf_counter()
    labels = teacher_labels(task, task.seed_rows(), asdict(job.cell.loop_config()), lm, [r["text"] for r in rows])
    seconds = round(time.perf_counter() - start, 2)
    report = score_teacher(task, [r[task.target_key] for r in rows], labels)
    result = {"dataset": job.dataset, "seed": job.seed, "settings": job.settings(),
              "test_double": job.cell.teacher == SCRIPTED, "eval_n": report["n"], **task.rules.scores(report),
              "unanswered": sum(lab is None for lab in labels), "per_label": report.get("per_label"),
              "seconds": seconds, "seconds_per_text": round(seconds / max(1, len(rows)), 3)}
    write_json_atomic(job.result_path, result)
    return result


def _run_job(job: Job) -> dict:
    if isinstance(job, Cell):
        return run_cell(job)
    return run_ceiling(job) if isinstance(job, Ceiling) else run_teacher_score(job)
