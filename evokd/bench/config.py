"""The benchmark config: BenchConfig and its datasets read from YAML (load_config), the work dir's
file names, the scores of each task kind, and the constants the draws, targets and tables share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from evokd import datadir
from evokd.errors import InputError
from evokd.noise import DEFAULT_NOISE, NOISE_MODES
from evokd.task import TaskSpec, _format_error, load_task, read_yaml_mapping
from evokd.task_kinds import kind_rules

CELL_FILE = "cell.json"
PREP_FILE = "prep.json"
TASK_FILE = "task.yaml"
TEACHER_DIR = "teacher"  # the teacher rows' results, one per dataset draw
POOL_FILE = "pool.jsonl"
SCRIPTED = "scripted"  # the TEST DOUBLE teacher of evokd.teacher.scripted
SCRIPTED_NAME = "scripted-test-double"
MIN_SEED_WORDS = 6  # datasets/make_seeds.py: a seed is a full sentence, not a phrase fragment
NER_MIN_SEED_WORDS = 8  # datasets/make_seeds.py's NER seeds: sentences of 8+ tokens
EVAL_SAMPLE_SEED = 0  # one eval sample per dataset, shared by every cell
TARGET_POINTS = 2.0  # points of the headline score (macro-F1; entity F1 on NER) each target asks for
TEACHER_GAP_POINTS = 3.0  # how far below the teacher's own score the best student may end
# Each target's points when the config's `targets` does not set them (None: the target is off unless set).
TARGET_DEFAULTS: dict[str, Optional[float]] = {
    "pool_selection_over_random": TARGET_POINTS,  # best of pool-evokd / pool-errors minus pool-random, all datasets
    "evokd_over_static": TARGET_POINTS,  # evokd minus static, per dataset
    "evokd_over_paper": None,  # evokd minus evokd-paper, per dataset
    "evokd_over_seed_only": TARGET_POINTS,  # evokd minus seed-only, per dataset
    "strategies_over_seed_only": None,  # the worst row that adds samples minus seed-only, per dataset
    "student_near_teacher": -TEACHER_GAP_POINTS,  # the best row minus the teacher row, per dataset
    "pool_near_teacher": None,  # the best pool row minus the teacher row, per dataset
}
GLOBAL_TARGETS = ("pool_selection_over_random",)  # measured over all datasets at once: one number, not one per dataset
TEST_DOUBLE_NOTE = ("`scripted`, a TEST DOUBLE: it 'generates' by drawing real sentences from the cell's pool and "
                    "labels them with their gold labels, so these numbers test the harness, not a teacher")

METRIC_NAMES = {"macro_f1": "macro-F1", "entity_f1": "entity F1", "accuracy": "accuracy"}


def metrics_of(kind: str) -> tuple[str, ...]:
    """A task kind's scores, the headline one (targets, gains, curves) first."""
    return kind_rules(kind).bench_metrics


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
    # How cells that train on teacher labels weigh them (`evokd generate --noise`); every mode listed
    # gets its own cells, and the first is the unsuffixed row the targets compare.
    noise: list[str] = Field(default=[DEFAULT_NOISE], min_length=1)
    # Time budget of every cell that calls a teacher (`evokd generate --max-minutes`): no new round once
    # the committed rounds took this long, so `rounds` becomes a cap and the cells compare at equal time.
    max_minutes: Optional[float] = Field(default=None, gt=0)
    # Pool cells without the oracle: the teacher's labels batch-calibrated (`evokd generate --calibrate-labels`).
    calibrate_labels: bool = True
    # A row for the teacher itself: it labels every eval row of each draw, asked as the cells ask (the draw's
    # seeds as demonstrations, label temperature and format), so the table shows what the students distil.
    teacher_row: bool = False
    # Points each target asks for (TARGET_DEFAULTS names them): a number for every dataset, or {dataset: number}
    # for those datasets only; a target the defaults leave off is measured only where this sets it.
    targets: dict[str, Union[float, dict[str, float]]] = Field(default_factory=dict)
    path: Optional[Path] = Field(default=None, exclude=True)

    @field_validator("seeds", "strategies", "students", "noise")
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

    @field_validator("noise")
    @classmethod
    def _known_noise(cls, value: list[str]):
        return _all_known(value, list(NOISE_MODES), "noise handling")

    @field_validator("teacher")
    @classmethod
    def _teacher_string(cls, value: str):
        value = value.strip()
        if value not in ("local", SCRIPTED) and ("/" not in value or value.endswith("/")):
            raise ValueError(f"got {value!r}; expected 'local', 'scripted' (a TEST DOUBLE) or a provider/model "
                             "string such as openai/gpt-4o-mini")
        return value

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, value: dict):
        _all_known(list(value), list(TARGET_DEFAULTS), "target")
        for name in GLOBAL_TARGETS:
            if isinstance(value.get(name), dict):
                raise ValueError(f"{name} is measured over all datasets at once; expected one number, not one per dataset")
        return value

    def target_points(self, target: str, dataset: Optional[str] = None) -> Optional[float]:
        """The points `target` asks for on `dataset` (a global target: dataset None), or None where it is off."""
        if target not in self.targets:
            return TARGET_DEFAULTS[target]
        points = self.targets[target]
        return points.get(dataset) if isinstance(points, dict) else points

    @property
    def test_double(self) -> bool:
        return self.teacher == SCRIPTED

    def row_name(self, strategy: str, noise: str) -> str:
        """The table row of `strategy`'s cells trained with `noise`: the strategy's name for the first
        noise mode listed, else suffixed with the mode (`evokd --noise agree`)."""
        return strategy if noise == self.noise[0] else f"{strategy} --noise {noise}"

    def noise_modes(self, strategy: str) -> list[str]:
        """The noise modes `strategy` gets cells for: all listed where the samples its cells add carry
        the teacher's labels, else the first only (seed-only and oracle pool cells run once)."""
        from evokd.strategies import get

        return self.noise if get(strategy).labels_by_teacher(self.oracle) else self.noise[:1]

    def row_names(self) -> list[str]:
        """Every table row, in the config's order: each strategy, then its other noise modes."""
        return [self.row_name(strategy, noise) for strategy in self.strategies for noise in self.noise_modes(strategy)]


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
        rows = task.rules.row_format
        for split in ("train", "test"):
            if datadir.split_file(entry.data, split) is None:
                raise InputError(path, f"{entry.data} has no {split}.jsonl; expected a folder with train.jsonl and "
                                       f"test.jsonl (or .jsonl.gz) of {rows} rows", field=f"datasets.{i}.data")
        tasks[task.name] = task
    for target, points in config.targets.items():
        unknown = [name for name in points if name not in tasks] if isinstance(points, dict) else []
        if unknown:
            raise InputError(path, f"dataset {unknown[0]!r} is not in the config; expected some of: {', '.join(tasks)}",
                             field=f"targets.{target}")
    return config, tasks


def _config_dict(config: BenchConfig) -> dict:
    """The config as written: paths relative to the config file."""
    data = config.model_dump(mode="json")
    base = config.path.parent
    for entry, raw in zip(data["datasets"], config.datasets):
        entry["task"], entry["data"] = (raw.as_written(key, base) for key in ("task", "data"))
    return data
