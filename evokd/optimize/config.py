"""What `evokd optimize` is asked to do: steps, optimiser, budget, demos, and how the label step runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from evokd.prompts import STEPS

OPTIMIZERS = ("bootstrap", "mipro", "gepa")
Progress = Callable[..., None]


def _quiet(*_args, **_kwargs) -> None:
    return None


@dataclass
class OptimizeConfig:
    steps: list[str] = field(default_factory=lambda: ["label"])
    optimizer: str = "bootstrap"
    budget: int | None = None  # bootstrap: candidate programs; mipro: trials; gepa: metric calls
    max_demos: int | None = None  # few-shot demos per predictor [label: 2 per label up to 8; others: 2]
    seed: int = 0
    threads: int = 1  # parallel evaluation calls (hosted teachers); the local teacher runs one at a time
    student: str | None = None  # student whose errors define hard/easy [tfidf; tagger for NER]
    texts_per_call: int = 4  # texts asked per generation call in the generate/analyze steps
    near_dup: float = 0.9
    label_temperature: float | None = 0.0  # as `evokd generate --label-temperature`: what the label step runs at
    label_format: str = "plain"  # as `evokd generate --label-format`: how the label step is put to the teacher

    def __post_init__(self):
        bad = [s for s in self.steps if s not in STEPS]
        if bad or not self.steps:
            raise ValueError(f"--steps {','.join(self.steps)}: expected a comma-separated subset of {','.join(STEPS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
        self.steps = [s for s in STEPS if s in self.steps]  # run in pipeline order: label first
