"""The benchmark data folder: full public datasets kept outside the repository.

The repository ships what its own commands and tests need (`datasets/`, `tests/data/`). Full
datasets for benchmarks live in one folder that the user names with the environment variable
`EVOKD_DATA` (`evokd bench --data-dir` and the `benchmarks/*.py` scripts' `--data-dir` set it).
Its layout is one sub-folder per dataset with `train.jsonl`, `test.jsonl` and, where the dataset
has one, `dev.jsonl` (each may be gzipped: `.jsonl.gz`).

Task files and bench configs refer to that folder by starting a path with `$EVOKD_DATA/`, e.g.
`eval: $EVOKD_DATA/ag_news/test.jsonl`. Such a path is resolved here, and a missing folder or file
is reported in one line that names the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

from evokd.errors import InputError

ENV = "EVOKD_DATA"
PREFIXES = ("$EVOKD_DATA", "${EVOKD_DATA}")
SPLIT_SUFFIXES = (".jsonl", ".jsonl.gz")
README_HINT = "see the README's 'Benchmark data'"


def refers_to_data_dir(value: str) -> bool:
    """Whether a path as written in a task file or config starts with `$EVOKD_DATA`."""
    return any(value == p or value.startswith(p + "/") for p in PREFIXES)


def root(*, source: str | Path | None = None, field: str | None = None) -> Path:
    """The folder EVOKD_DATA names; `source`/`field` say who asked, for the error when it is unset or missing."""
    value = os.environ.get(ENV, "").strip()
    where = source if source is not None else ENV
    if not value:
        raise InputError(where, f"needs the benchmark data folder, but {ENV} is not set; expected {ENV} (or "
                                f"--data-dir of `evokd bench` and benchmarks/*.py) to name a folder with one "
                                f"sub-folder per dataset ({README_HINT})", field=field)
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise InputError(where, f"{ENV}={value} is not a folder; expected {ENV} (or --data-dir of `evokd bench` and "
                                f"benchmarks/*.py) to name the benchmark data folder ({README_HINT})", field=field)
    return Path(os.path.abspath(folder))


def expand(value: str, base: Path, *, source: str | Path, field: str) -> Path:
    """A path as written in a task file or config: `$EVOKD_DATA/...` under the data folder, anything
    else relative to `base` (the folder of the file that holds it). Absolute, symlinks not followed."""
    for prefix in PREFIXES:
        if value == prefix or value.startswith(prefix + "/"):
            return root(source=source, field=field) / value[len(prefix):].lstrip("/")
    return Path(os.path.abspath(base / Path(value).expanduser()))


def missing_file_error(value: str, path: Path, *, source: str | Path, field: str,
                       holder: str = "the task file") -> InputError:
    """The one-line error for a referenced file or folder that does not exist, naming EVOKD_DATA where it
    was used; `holder` is the kind of file that referred to it (paths are relative to it)."""
    if refers_to_data_dir(value):
        return InputError(source, f"{path} not found: {value} is not in the benchmark data folder {ENV}="
                                  f"{os.environ.get(ENV, '')}; expected that dataset there ({README_HINT})", field=field)
    return InputError(source, f"{path} not found; expected a path relative to {holder} or starting with "
                              f"${ENV}/", field=field)


def split_file(folder: Path, split: str) -> Path | None:
    """`folder/split.jsonl` or `folder/split.jsonl.gz`, whichever exists (plain first); None if neither."""
    for suffix in SPLIT_SUFFIXES:
        candidate = folder / f"{split}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def set_from_option(data_dir: str | Path | None) -> None:
    """`--data-dir DIR`: make DIR the data folder for this process (overrides EVOKD_DATA)."""
    if data_dir is not None:
        os.environ[ENV] = os.path.abspath(Path(data_dir).expanduser())


def for_script(script: str, *, required: bool = True) -> Path:
    """The data folder of a `benchmarks/*.py` script: its `--data-dir DIR` (taken out of sys.argv, so the
    script's own parser never sees it) or EVOKD_DATA. Exits with the one-line error when it is needed
    and missing; with `required=False` (a script only re-rendering its results) a missing folder is
    returned as a path that does not exist."""
    import sys

    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if arg == "--data-dir" and i + 1 < len(argv):
            set_from_option(argv[i + 1])
            del sys.argv[i + 1:i + 3]
            break
        if arg.startswith("--data-dir="):
            set_from_option(arg.split("=", 1)[1])
            del sys.argv[i + 1]
            break
    try:
        return root(source=Path(script).name)
    except InputError as exc:
        if required:
            raise SystemExit(f"error: {exc}") from None
        return Path(os.environ.get(ENV, "") or "EVOKD_DATA-not-set")
