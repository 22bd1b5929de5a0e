"""run_bench: prepare the task folders, run every unfinished job on an executor, then write the
results (NAME.json, NAME.md, NAME-DATASET.png)."""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

from evokd import __version__
from evokd.bench.aggregate import machine, summarize, targets
from evokd.bench.config import POOL_FILE, BenchConfig, _config_dict
from evokd.bench.executors import Events, run_jobs, run_jobs_ray
from evokd.bench.jobs import Cell, Ceiling, TeacherScore, _finished, plan
from evokd.bench.render import plot_curves, render_markdown
from evokd.bench.seeds import _relative, prepare
from evokd.errors import EvokdError
from evokd.io import write_json_atomic, write_text_atomic
from evokd.task import TaskSpec

RUNS_LOG = "bench-runs.jsonl"  # in the work dir: one line per `evokd bench` invocation that ran jobs


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def log_runs(work_dir: Path, command: str, started: str, finished: list[str], where: str | None = None) -> None:
    """Append one line to WORK/bench-runs.jsonl: which bench command finished which jobs, when and on
    what machine (`where`, else this one), so results rendered later (--render-only) still say how
    their cells were run."""
    if not finished:
        return
    m = machine()
    entry = {"command": command, "started": started, "ended": _utc_now(), "machine": where or f"{m['cpu']}, {m['cores']} cores",
             "evokd": __version__, "jobs": finished}
    with (work_dir / RUNS_LOG).open("a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def read_runs(work_dir: Path) -> list[dict]:
    """The lines of WORK/bench-runs.jsonl (none for a work dir from before the bench kept it). A line may
    carry a `note`, which the results print beside it (a line written by hand for a run from before the log)."""
    path = work_dir / RUNS_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_bench(config: BenchConfig, tasks: dict[str, TaskSpec], *, work_dir: Path, results_dir: Path, n_workers: int = 1,
              command: str = "", events: Events = lambda event, **info: None, run: bool = True,
              only: tuple[str, ...] = (), datasets: tuple[str, ...] = (), seeds: tuple[int, ...] = (),
              executor: str = "local", address: str | None = None, cpus_per_cell: int = 1) -> dict:
    """Prepare, run every unfinished job, then write NAME.md, NAME.json and NAME-DATASET.png; returns the paths.
    With run=False nothing runs: the results show the jobs finished so far and list the others.
    `only` limits this run to the cells of those strategies (and the ceilings and teacher rows); `datasets`
    limits it to the jobs of those datasets (by task name); `seeds` to the cells and teacher rows of those
    random seeds (and the ceilings, which belong to no seed). The results always cover the whole config."""
    folders = prepare(config, tasks, work_dir)
    jobs = plan(config, tasks, folders, work_dir)
    todo = [job for job in jobs if not _finished(job)]
    if only:
        unknown = sorted(set(only) - set(config.strategies))
        if unknown:
            raise EvokdError(f"--only {unknown[0]}: not a strategy of this config; expected one of: "
                             f"{', '.join(config.strategies)}")
        todo = [job for job in todo if not isinstance(job, Cell) or job.strategy in only]
    if datasets:
        unknown = sorted(set(datasets) - set(tasks))
        if unknown:
            raise EvokdError(f"--dataset {unknown[0]}: not a dataset of this config; expected one of: {', '.join(tasks)}")
        todo = [job for job in todo if job.dataset in datasets]
    if seeds:
        unknown = sorted(set(seeds) - set(config.seeds))
        if unknown:
            raise EvokdError(f"--seed {unknown[0]}: not a random seed of this config; expected one of: "
                             f"{', '.join(map(str, config.seeds))}")
        todo = [job for job in todo if isinstance(job, Ceiling) or job.seed in seeds]
    events("plan", total=len(jobs), done=len(jobs) - len(todo))
    started = _utc_now()
    try:
        if run and executor == "ray":
            run_jobs_ray(todo, events, address=address, cpus_per_cell=cpus_per_cell)
        elif run:
            run_jobs(todo, n_workers, events)
    finally:  # an interrupted bench still records the jobs it finished
        if run:
            log_runs(work_dir, command, started, [j.key for j in todo if j.result_path.is_file()],
                     where=f"a Ray cluster ({address or 'local'})" if executor == "ray" else None)
    done = [j for j in jobs if j.result_path.is_file()]
    unfinished = [j.key for j in jobs if not j.result_path.is_file()]
    # each cell's command as evokd spells it now (its settings match, see _finished): a cell from before an
    # option existed then reproduces with that option's old value rather than today's default
    cells = [{**json.loads(j.result_path.read_text(encoding="utf-8")), "command": j.command()}
             for j in done if isinstance(j, Cell)]
    ceilings = [json.loads(j.result_path.read_text(encoding="utf-8")) for j in done if isinstance(j, Ceiling)]
    teacher_scores = [json.loads(j.result_path.read_text(encoding="utf-8")) for j in done if isinstance(j, TeacherScore)]
    datasets = {}
    for name, entry in zip(tasks, config.datasets):
        folder = folders[(name, config.seeds[0])]
        datasets[name] = {"kind": tasks[name].kind, "shots": entry.shots, "labels": len(tasks[name].labels),
                          "eval_n": sum(1 for _ in (folder / "eval.jsonl").open(encoding="utf-8")),
                          "pool_n": sum(1 for _ in (folder / POOL_FILE).open(encoding="utf-8"))}
    runs = read_runs(work_dir)
    logged = {key for run in runs for key in run["jobs"]}
    summary = summarize(config, {name: task.kind for name, task in tasks.items()}, cells, ceilings, teacher_scores)
    result = {
        "name": config.name, "command": command, "date": _utc_now(), "runs": runs,
        "unlogged": [j.key for j in done if j.key not in logged],
        "evokd": __version__, "machine": machine(), "config": _config_dict(config), "test_double": config.test_double,
        "work_dir": _relative(work_dir), "datasets": datasets, "targets": targets(summary, config.students, config),
        "summary": summary, "ceilings": ceilings, "teacher_scores": teacher_scores, "cells": cells,
        "unfinished": unfinished,
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
