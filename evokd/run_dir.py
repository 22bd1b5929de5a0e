"""The run folder `evokd generate --out DIR` writes, and the one place that knows its layout.

    DIR/evokd.duckdb    the run store (evokd.store): config, samples, rounds, teacher calls
    DIR/dataset.jsonl   the accepted rows, one `dataset_row` each (rewritten after every round)
    DIR/rounds.jsonl    one line per committed round (eval metrics, counts, tokens)

`evokd runs`, `export`, `report`, `compare` and `distill` find a run's files through here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from evokd.errors import InputError
from evokd.io import write_jsonl_atomic
from evokd.task_kinds import kind_rules

if TYPE_CHECKING:
    from evokd.store import Store
    from evokd.task import TaskSpec

STORE_NAME = "evokd.duckdb"
DATASET_NAME = "dataset.jsonl"
ROUNDS_NAME = "rounds.jsonl"


def store_path(run_dir: str | Path) -> Path:
    """DIR/evokd.duckdb of a run directory (a path to the .duckdb file itself is accepted too)."""
    run_dir = Path(run_dir)
    if run_dir.is_file() and run_dir.suffix == ".duckdb":
        return run_dir
    if not run_dir.exists():
        raise InputError(run_dir, "not found; expected a run directory written by `evokd generate`")
    if not run_dir.is_dir():
        raise InputError(run_dir, f"is a file; expected a run directory holding {STORE_NAME}")
    path = run_dir / STORE_NAME
    if not path.is_file():
        raise InputError(path, "not found; expected a run directory written by `evokd generate`")
    return path


def open_run(run_dir: str | Path) -> Store:
    """The run's store, read-only (looking at a run never changes it)."""
    from evokd.store import Store

    return Store.open_read_only(store_path(run_dir))


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / STORE_NAME).is_file()


def dataset_file(path: str | Path) -> Path:
    """The training rows of DATASET (a run directory's dataset.jsonl, or a labeled file as it is)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "not found; expected a run directory written by `evokd generate` or a .jsonl file")
    if path.is_dir():
        path = path / DATASET_NAME
        if not path.is_file():
            raise InputError(path, "not found; expected a run directory written by `evokd generate` or a .jsonl file")
    return path


def run_task(run_dir: str | Path) -> TaskSpec:
    """The task a run was made for, as its store recorded it (what `distill RUN` uses without --task)."""
    from evokd.task import TaskSpec

    info = _run_info(run_dir)
    if info is None:
        raise InputError(store_path(run_dir), "holds no run yet; expected a run started by `evokd generate`")
    return TaskSpec.model_validate(info["task"])


def run_config(run_dir: str | Path) -> dict:
    """The settings a run was started with, as its store recorded them ({} for a folder with no run yet)."""
    return (_run_info(run_dir) or {}).get("config") or {}


def _run_info(run_dir: str | Path) -> dict | None:
    with open_run(run_dir) as store:
        return store.run_info()


def dataset_row(sample: dict, kind: str, *, include_status: bool = False) -> dict:
    """A store sample as a `dataset.jsonl` row; with `include_status`, also why it was rejected."""
    row = kind_rules(kind).dataset_row(sample)
    if include_status:
        row["status"] = sample["status"]
        row["reject_reason"] = sample["reject_reason"]
        if "entities" in row:  # NER: what locating the teacher's mentions noted
            row["label_notes"] = sample["label_notes"]
    return row


def write_outputs(run_dir: str | Path, store: Store, kind: str) -> None:
    """Rewrite DIR/dataset.jsonl (the accepted rows) and DIR/rounds.jsonl from the store, atomically."""
    run_dir = Path(run_dir)
    write_jsonl_atomic(run_dir / DATASET_NAME, [dataset_row(s, kind) for s in store.samples()])
    write_jsonl_atomic(run_dir / ROUNDS_NAME, store.rounds())
