"""Finding runs and reading what they logged: `evokd runs` and `evokd calls`.

Everything here opens run stores read-only, so looking at a run never changes it, and a run
that `evokd generate` is still writing shows up as running instead of failing the listing.
"""

from __future__ import annotations

import os
from pathlib import Path

from typing import TYPE_CHECKING

from evokd.errors import EvokdError, InputError
from evokd.run_dir import STORE_NAME, open_run
from evokd.task_kinds import kind_rules

if TYPE_CHECKING:
    from evokd.store import Store

_SKIP_DIRS = {"node_modules", "__pycache__", "site-packages"}


def metric_of(kind: str) -> tuple[str, str]:
    """(rounds column, display name) of a task kind's headline eval metric."""
    return kind_rules(kind).headline


def summarize(store: Store, run_dir: str | Path) -> dict:
    """One line of `evokd runs`: what the run is, how far it got and how well the student did."""
    info = store.run_info()
    if info is None:
        return {"dir": str(run_dir), "status": "empty", "task": None, "kind": None, "teacher": None,
                "rounds_done": 0, "rounds_planned": None, "samples": 0, "rejected": 0, "metric": None,
                "seed_metric": None, "best_metric": None, "best_round": None, "final_metric": None,
                "tokens": 0, "calls": 0, "failed_calls": 0, "seconds": 0.0, "created_at": None}
    rounds = store.rounds()
    key, name = metric_of(info["task_kind"])
    scored = [(r[key], r["round"]) for r in rounds if r[key] is not None]
    best = max(scored, key=lambda x: (x[0], -x[1])) if scored else (None, None)
    counts = store.sample_counts()
    done = max((r["round"] for r in rounds), default=None)
    planned = info["config"].get("rounds")
    if done is None:
        status = "empty"
    elif planned is not None and done >= planned:
        status = "complete"
    else:
        status = "partial"
    return {
        "dir": str(run_dir),
        "status": status,
        "task": info["task_name"],
        "kind": info["task_kind"],
        "teacher": info["teacher"],
        "rounds_done": done or 0,
        "rounds_planned": planned,
        "samples": sum(n for (_, status_), n in counts.items() if status_ == "accepted"),
        "rejected": sum(n for (_, status_), n in counts.items() if status_ == "rejected"),
        "metric": name,
        "seed_metric": next((r[key] for r in rounds if r["round"] == 0), None),
        "best_metric": best[0],
        "best_round": best[1],
        "final_metric": rounds[-1][key] if rounds else None,
        "tokens": sum((r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0) for r in rounds),
        "calls": sum(r["n_calls"] or 0 for r in rounds),
        "failed_calls": sum(r["n_failed_calls"] or 0 for r in rounds),
        "seconds": sum(r["seconds"] or 0.0 for r in rounds),
        "created_at": info["created_at"].isoformat() if info["created_at"] is not None else None,
    }


def find_run_dirs(root: str | Path) -> list[Path]:
    """Directories under `root` (itself included) that hold a run store; hidden folders and
    package trees are not searched."""
    root = Path(root)
    if not root.exists():
        raise InputError(root, "not found; expected a directory holding run directories")
    if not root.is_dir():
        raise InputError(root, "is a file; expected a directory holding run directories")
    found = []
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        if STORE_NAME in files:
            found.append(Path(current))
    return found


def list_runs(root: str | Path) -> list[dict]:
    """A summary per run under `root`; runs that cannot be read are listed with the reason."""
    out = []
    for run_dir in find_run_dirs(root):
        try:
            with open_run(run_dir) as store:
                out.append(summarize(store, run_dir))
        except EvokdError as exc:
            busy = "lock" in str(exc).lower()
            out.append({"dir": str(run_dir), "status": "running" if busy else "unreadable",
                        "error": str(exc).split(": ", 1)[-1]})
    return out


def fmt_metric(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def runs_table_rows(runs: list[dict]) -> list[list[str]]:
    """Rows of the `evokd runs` table, one per run, in the order of RUNS_COLUMNS."""
    rows = []
    for r in runs:
        if "error" in r:
            rows.append([r["dir"], "–", "–", "–", "–", "–", "–", r["status"] + ": " + r["error"]])
            continue
        planned = r["rounds_planned"]
        best = fmt_metric(r["best_metric"])
        if r["best_metric"] is not None:
            best += f" ({r['metric']}, round {r['best_round']})"
        rows.append([r["dir"], r["task"] or "–", r["teacher"] or "–",
                     f"{r['rounds_done']}/{planned}" if planned is not None else str(r["rounds_done"]),
                     str(r["samples"]), fmt_metric(r["seed_metric"]), best, r["status"]])
    return rows


RUNS_COLUMNS = ["run", "task", "teacher", "rounds", "samples", "seed-only", "best eval", "status"]


def read_calls(run_dir: str | Path, *, round: int | None = None, step: str | None = None,
               failed: bool | None = None) -> list[dict]:
    """The run's teacher call log, filtered; an unknown step or round is an error naming what exists."""
    with open_run(run_dir) as store:
        all_calls = store.calls()
        if step is not None:
            steps = sorted({c["step"] for c in all_calls})
            if step not in steps:
                raise EvokdError(f"--step {step!r}: no such step in {store.path}; steps logged: {', '.join(steps) or 'none'}")
        if round is not None:
            rounds = sorted({r["round"] for r in store.rounds()})
            if round not in rounds:
                shown = f"{rounds[0]}–{rounds[-1]}" if rounds else "none"
                raise EvokdError(f"--round {round}: no such round in {store.path}; rounds committed: {shown}")
        return store.calls(round=round, step=step, failed=failed)
