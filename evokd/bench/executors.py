"""Executors: run a list of jobs in this process, in spawned worker processes (run_jobs) or as Ray
tasks on a cluster (run_jobs_ray), reporting each start and result through an events callback."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Callable

from evokd.bench.config import TASK_FILE
from evokd.bench.jobs import Job, _run_job
from evokd.errors import EvokdError
from evokd.io import write_json_atomic


def _worker_init() -> None:
    """Workers share the cores: one llama thread for a local teacher, one torch/BLAS thread for students."""
    for var in ("EVOKD_LOCAL_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"


Events = Callable[..., None]


def run_jobs(jobs: list[Job], n_workers: int, events: Events) -> None:
    """Run the jobs in this process (n_workers 1) or in n_workers spawned processes, calling
    events("start", job=...) and events("done", job=..., result=...). The first failure stops the rest."""
    if n_workers <= 1:
        for job in jobs:
            events("start", job=job)
            events("done", job=job, result=_guarded(job))
        return
    pending = list(jobs)
    running: dict[Future, Job] = {}
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


def _ray_job(job: Job, threads: int) -> dict:
    """One cell as a Ray task. Ray reuses its worker processes, and the embedded teacher is cached
    per process (evokd.teacher.local._load_llama), so a worker loads the model once for all its cells."""
    for var in ("EVOKD_LOCAL_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    task_dir = job.task_dir
    if not (task_dir / TASK_FILE).is_file():
        raise EvokdError(f"{task_dir}: not visible on this Ray node; the bench work dir must be on a filesystem "
                         "every node sees (a shared or network folder)")
    return _guarded(job)


def run_jobs_ray(jobs: list[Job], events: Events, *, address: str | None = None, cpus_per_cell: int = 1,
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


def _guarded(job: Job) -> dict:
    """_run_job, with an actionable error naming the job (and keeping its exit code)."""
    try:
        return _run_job(job)
    except EvokdError as exc:
        err = EvokdError(f"{job.key}: {exc}; finished cells are kept, re-run to continue")
        err.exit_code = exc.exit_code
        raise err from None
