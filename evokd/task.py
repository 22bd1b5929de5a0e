"""The task spec (TASK.yaml): what the student must learn, its labels, seeds and eval data."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evokd import datadir
from evokd.errors import InputError
from evokd.io import ReadReport, count_repeats, merge_repeats
from evokd.task_kinds import TaskKind, kind_rules


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str = ""


class TaskSpec(BaseModel):
    """A validated task. Paths are resolved relative to the YAML file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["classification", "ner"]
    description: str = Field(min_length=1)
    labels: list[Label] = Field(min_length=2)
    seeds: Path
    eval: Optional[Path] = None
    language: str = "en"
    # Ways the task's texts vary, NAME -> values (e.g. {aspect: [acting, plot, music]}): the evokd-attr
    # strategy asks for one drawn value of each in every generation request (evokd.loop.attributes).
    attributes: dict[str, list[str]] = Field(default_factory=dict)
    path: Optional[Path] = Field(default=None, exclude=True)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_from_mapping(cls, value):
        # Accept {name: description}, [name, ...] or [{name, description}, ...].
        if isinstance(value, dict):
            return [{"name": str(k), "description": "" if v is None else v} for k, v in value.items()]
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, value: list[Label]):
        names = [label.name for label in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate label {dupes[0]!r}; expected unique label names")
        return value

    @field_validator("attributes")
    @classmethod
    def _attribute_values(cls, value: dict[str, list[str]]):
        for name, values in value.items():
            cleaned = [v.strip() for v in values]
            if not name.strip() or not cleaned or not all(cleaned):
                raise ValueError(f"attribute {name!r} has {'no' if not cleaned else 'an empty'} value; expected "
                                 "NAME: [value, ...] with non-empty values")
        return {name.strip(): [v.strip() for v in values] for name, values in value.items()}

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def rules(self) -> TaskKind:
        """What differs between task kinds (evokd.task_kinds): reading rows, answers, metrics, default student."""
        return kind_rules(self.kind)

    @property
    def label_descriptions(self) -> dict[str, str]:
        """Label name -> its description (the name itself where the task gives none): what a
        student that reads label meanings (minilm's anchors) learns each label from."""
        return {lab.name: lab.description.strip() or lab.name for lab in self.labels}

    @property
    def target_key(self) -> str:
        """The field of a labeled row that holds its answer: "entities" (NER) or "label"."""
        return self.rules.target_key

    def read_rows(self, path, *, unique: bool = True) -> list[dict]:
        """Labeled rows of this task's kind, {"text", "label"} or {"text", "entities"}, read strictly
        (seeds, and tools that need the rows as written): every row checked, none dropped or changed;
        a text over MAX_TEXT_CHARS is refused, and so, with `unique`, is a repeated text."""
        return self.rules.read_rows(path, self.label_names, unique=unique)

    def read_data(self, path, use: Literal["train", "eval", "pool"]) -> tuple[list[dict], ReadReport]:
        """Labeled rows of this task's kind as users have them, and the report of what reading changed.

        Every row is checked as `read_rows` checks it, except that a text over MAX_TEXT_CHARS is cut
        (evokd.io.cut_text; NER entities ending beyond the cut are dropped). For `use="train"` a
        repeated text is kept once (evokd.io.merge_repeats: the majority label, or entities, wins; on
        a tie the one seen first). "eval" and "pool" (a NER --oracle pool) keep every row, repeats
        counted: an eval set may repeat a text, and a run's duplicate filter takes a pool text once."""
        return read_data(path, self.label_names, kind=self.kind, use=use)

    def seed_rows(self) -> list[dict]:
        """The seeds, read strictly (`read_rows`): a repeated or over-long text is refused."""
        rows = self.read_rows(self.seeds)
        if not rows:
            raise InputError(self.seeds, "no rows; expected at least one labeled seed example")
        self.rules.check_seeds(rows, self.seeds)
        return rows

    def eval_data(self) -> tuple[list[dict] | None, ReadReport | None]:
        """The task's eval rows (`read_data(..., "eval")`: every row kept, over-long texts cut) and
        the report of what reading changed; (None, None) when the task has no eval file."""
        if self.eval is None:
            return None, None
        rows, report = self.read_data(self.eval, "eval")
        if not rows:
            raise InputError(self.eval, "no rows; expected labeled evaluation examples")
        return rows, report

    def eval_rows(self) -> list[dict] | None:
        """The rows of `eval_data`, without its report."""
        return self.eval_data()[0]

    def to_public_dict(self) -> dict:
        data = self.model_dump(mode="json")
        return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


_TASK_FIELDS = ("name", "kind", "description", "labels", "seeds", "eval", "language")


def _format_error(err: dict, fields: tuple[str, ...] = _TASK_FIELDS) -> tuple[str, str]:
    """(dotted field, message) of a pydantic error; `fields` are the ones an unknown field is told to pick from."""
    field = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "missing":
        msg = "missing; required"
    elif err["type"] == "literal_error":
        msg = f"got {err.get('input')!r}; {msg.replace('Input should be', 'expected')}"
    elif err["type"] == "extra_forbidden":
        msg = f"unknown field; expected {', '.join(fields)}"
    return field, msg.replace("Value error, ", "")


def read_data(path, labels, *, kind: str, use: Literal["train", "eval", "pool"]) -> tuple[list[dict], ReadReport]:
    """`TaskSpec.read_data` for callers that know only the kind and labels (a shipped student's `evokd eval`)."""
    if use not in ("train", "eval", "pool"):
        raise ValueError(f"use={use!r}: expected 'train', 'eval' or 'pool'")
    rules = kind_rules(kind)
    key = rules.target_key
    report = ReadReport(Path(path).name, answer=key)
    numbered = list(rules.iter_rows(path, labels, cut_into=report))
    if use == "train":
        return [row for _, row in merge_repeats(numbered, key, report)], report
    count_repeats((row["text"] for _, row in numbered), report)
    return [row for _, row in numbered], report


def read_yaml_mapping(path: str | Path, what: str = "a task YAML file") -> dict:
    """The top-level mapping of a UTF-8 YAML file (duplicate keys refused); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"file not found; expected {what}")
    try:
        raw = yaml.load(path.read_bytes().decode("utf-8-sig"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError:
        raise InputError(path, "not valid UTF-8; expected a UTF-8 YAML file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or "malformed"
        raise InputError(path, f"invalid YAML ({problem})", line=line) from None
    if not isinstance(raw, dict):
        raise InputError(path, f"expected a YAML mapping at the top level, got {type(raw).__name__}")
    return raw


def load_task(path: str | Path, *, check_files: bool = True) -> TaskSpec:
    """Parse and validate TASK.yaml, then check that its seed and eval files exist. With
    `check_files=False` (a caller that needs only the description and labels, like `evokd bench`)
    the files are neither checked nor is `$EVOKD_DATA` required to be set."""
    path = Path(path)
    raw = read_yaml_mapping(path)
    base = path.resolve().parent
    written = {key: raw[key] for key in ("seeds", "eval") if isinstance(raw.get(key), str)}
    for key, value in written.items():  # relative to the task file, or `$EVOKD_DATA/...` (evokd.datadir)
        if check_files or not datadir.refers_to_data_dir(value):
            raw[key] = str(datadir.expand(value, base, source=path, field=key).resolve())
    try:
        task = TaskSpec(**raw)
    except ValidationError as exc:
        field, msg = _format_error(exc.errors()[0])
        raise InputError(path, msg, field=field) from None
    task.path = path.resolve()
    for key in ("seeds", "eval") if check_files else ():
        value = getattr(task, key)
        if value is not None and not Path(value).is_file():
            raise datadir.missing_file_error(written.get(key, str(value)), Path(value), source=path, field=key)
    return task
