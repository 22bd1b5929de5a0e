"""Teacher prompt states: what `evokd optimize` writes and `evokd generate --prompts` reads.

A state file is DSPy's own program state (per predictor: instructions, field descriptions and
few-shot demos, as `dspy.Module.dump_state` writes it) for the Teacher's predictors that were
optimised, wrapped with the task it was optimised for. The labels are part of the program (the
labeling step's output is an enum of them and its demos carry them), so a state is refused for
a task whose labels differ. A sidecar `NAME.meta.json` says how the state was made.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from evokd.errors import InputError
from evokd.task import TaskSpec

FORMAT = "evokd-prompts/1"
# The Teacher predictors each optimisation step tunes.
STEP_PREDICTORS = {"label": ("label",), "generate": ("generate_class",), "analyze": ("analyze",)}
STEPS = tuple(STEP_PREDICTORS)


def meta_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.stem + ".meta.json")


def digest(program: dict) -> str:
    """Short content hash of a program state: what the store records for each call that used it."""
    blob = json.dumps(program, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class PromptState:
    path: str
    task_name: str
    labels: list[str]
    steps: list[str]
    program: dict  # predictor name -> DSPy Predict state
    digest: str

    def apply(self, teacher) -> None:
        """Load the state into a Teacher's predictors and mark its calls with the state's digest."""
        for name, state in self.program.items():
            getattr(teacher, name).load_state(state)
        teacher.prompt_state = self.digest


def dump_program(teacher, steps: list[str]) -> dict:
    program = {}
    for step in steps:
        for name in STEP_PREDICTORS[step]:
            state = getattr(teacher, name).dump_state()
            state["lm"] = None  # the teacher is chosen at run time, never stored with the prompts
            program[name] = state
    return program


def prompt_document(task: TaskSpec, steps: list[str], program: dict) -> dict:
    return {"format": FORMAT, "task": {"name": task.name, "kind": task.kind, "labels": list(task.label_names)},
            "steps": list(steps), "program": program, "digest": digest(program)}


def load_prompts(path: str | Path, task: TaskSpec) -> PromptState:
    """Read and check a state file for `task`; every problem is one InputError line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "prompt state file not found; expected the JSON that `evokd optimize --out` writes")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc}); expected the JSON that `evokd optimize --out` writes") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(path, f"expected an evokd prompt state ({FORMAT!r})", field="format")
    info = doc.get("task")
    if not isinstance(info, dict) or not isinstance(info.get("labels"), list):
        raise InputError(path, "expected {name, kind, labels} of the task it was optimised for", field="task")
    if info.get("kind") != task.kind or list(info["labels"]) != list(task.label_names):
        raise InputError(path, f"optimised for task '{info.get('name')}' ({info.get('kind')}, labels "
                               f"{', '.join(map(str, info['labels']))}), not for '{task.name}' ({task.kind}, labels "
                               f"{', '.join(task.label_names)}); optimise the prompts for this task", field="task")
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps or any(s not in STEPS for s in steps):
        raise InputError(path, f"expected a non-empty list of steps from {', '.join(STEPS)}", field="steps")
    program = doc.get("program")
    wanted = {name for s in steps for name in STEP_PREDICTORS[s]}
    if not isinstance(program, dict) or set(program) != wanted:
        raise InputError(path, f"expected the states of predictors {', '.join(sorted(wanted))}", field="program")
    for name, state in program.items():
        if not isinstance(state, dict) or not isinstance(state.get("demos"), list) or "signature" not in state:
            raise InputError(path, "expected a DSPy predictor state with 'demos' and 'signature'", field=f"program.{name}")
    return PromptState(path=str(path), task_name=str(info.get("name")), labels=list(info["labels"]), steps=list(steps),
                       program=program, digest=digest(program))
