"""The contract every way of getting a round's data follows, and the registry strategies pick from.

A source turns one round's aim (the weakness analysis, or the error statistics) into candidate
texts, filtered and labeled. `plan_calls` says which teacher calls its first attempt makes, so
`evokd generate --dry-run` asks the same object the run uses. A new source is one module in this
package that subclasses `Source` and is decorated `@source("MODE")`, plus one `Strategy` line in
evokd/strategies.py that names MODE as its `generation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from evokd.loop.candidates import Candidate, CandidateFilter, label_candidates
from evokd.loop.config import LoopConfig, Plan
from evokd.loop.state import RunState
from evokd.task import TaskSpec

SOURCES: dict[str, type[Source]] = {}  # generation mode -> the source that serves it


def source(mode: str):
    """Register a Source subclass as the one serving generation mode `mode` (evokd.strategies)."""
    def register(cls):
        SOURCES[mode] = cls
        return cls
    return register


@dataclass
class Round:
    """What a source gets to collect one round's data."""

    number: int
    state: RunState
    feedback: Any  # evokd.teacher.teacher.Feedback
    aim: str | None  # the weakness analysis, or the error statistics when it failed
    student: Any  # the student trained on everything accepted so far
    taken: set[int] = field(default_factory=set)  # pool ids this round has taken


@dataclass
class Context:
    """What every source may use: the task, the settled plan, the teacher, the store and the filters."""

    task: TaskSpec
    plan: Plan
    seeds: list[dict]
    teacher: Any  # evokd.teacher.teacher.Teacher, or None for strategies that call no LLM
    store: Any  # evokd.store.Store (pool rows live there)
    filters: CandidateFilter
    progress: Callable[..., None]
    pool_vectors: Callable | None = None  # shared cache of pool embeddings (evokd bench), else evokd.embed.encode

    @property
    def config(self) -> LoopConfig:
        return self.plan.config

    @property
    def labels(self) -> list[str]:
        return self.task.label_names


class Source:
    """Collects a round's candidates: `batch` asks for what the budget still needs, the filters and the
    labeling step run on each batch, and top-ups ask again (at most `generation_topups` times) for what
    they rejected."""

    labels_itself = False  # True: its candidates come labeled (a seed's label), the labeling step skips them

    def __init__(self, ctx: Context):
        self.ctx = ctx

    # what subclasses provide -----------------------------------------------------------
    def budget(self, round_: int, state: RunState | None) -> dict[str | None, int]:
        """Round `round_`'s texts to collect, by intended label (None: any label). `state` None: the
        budget planned before the run (what --dry-run assumes)."""
        return {None: self.ctx.config.per_round}

    def batch(self, rnd: Round, need: dict[str | None, int], attempt: int) -> list[Candidate]:
        """Raw candidates for what `need` still asks (attempt 0 first, then top-ups)."""
        raise NotImplementedError

    def plan_calls(self, round_: int, need: dict[str | None, int]) -> dict[str, int]:
        """Teacher calls by step of the first attempt for budget `need` (labeling not counted)."""
        raise NotImplementedError

    def labeling_calls(self, n: int) -> int:
        """First-attempt labeling calls for `n` of its texts that passed the filters: none when they come
        with their labels (`labels_itself`) or, without separate labeling, take the class they were
        written for or the label generated with them."""
        cfg = self.ctx.config
        if self.labels_itself or not cfg.separate_labeling:
            return 0
        return self.teacher_labeling_calls(n)

    def teacher_labeling_calls(self, n: int) -> int:
        """The labeling calls of `n` texts the teacher labels (each vote a call; NER one call a text)."""
        cfg = self.ctx.config
        return n * (cfg.label_votes if self.ctx.task.rules.labeled_by_votes else 1)

    # the collection loop -----------------------------------------------------------------
    def collect(self, rnd: Round) -> list[Candidate]:
        ctx = self.ctx
        need = self.budget(rnd.number, rnd.state)
        candidates: list[Candidate] = []
        for attempt in range(1 + ctx.config.generation_topups):
            if sum(max(v, 0) for v in need.values()) <= 0:
                break
            batch = self.batch(rnd, need, attempt)
            if not batch:
                continue
            self.filter_and_label(rnd, batch, prior=candidates)
            candidates += batch
            for c in batch:
                key = c.intended_label if c.intended_label in need else None
                if c.reject_reason is None and key in need:
                    need[key] -= 1
        return candidates

    def filter_and_label(self, rnd: Round, batch: list[Candidate], prior: list[Candidate] = ()) -> None:
        ctx = self.ctx
        ctx.filters.apply(rnd.state, batch, prior=prior)
        label_candidates(ctx.teacher, rnd.number, batch, ctx.config, ctx.plan.strategy, ctx.task.rules, ctx.progress)
