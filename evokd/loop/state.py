"""What a run has committed so far, held in memory between rounds (read from the store once per round)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import numpy as np

from evokd.store import Store


@dataclass
class RunState:
    """The accepted samples, the committed rounds and what the duplicate filters compare against."""

    accepted: list[dict] = field(default_factory=list)  # accepted samples in commit order (Store.samples())
    rounds: list[dict] = field(default_factory=list)  # committed rounds (Store.rounds())
    hashes: set[str] = field(default_factory=set)  # normalised-text hashes of the accepted samples
    vectors: np.ndarray | None = None  # embeddings of the accepted samples, in commit order

    @classmethod
    def read(cls, store: Store) -> RunState:
        return cls(store.samples(), store.rounds(), store.accepted_hashes(), store.accepted_vectors())

    def accepted_in(self, round_: int) -> list[dict]:
        return [r for r in self.accepted if r["round"] == round_]

    @property
    def analyses(self) -> list[str]:
        """The weakness analyses of the committed rounds, oldest first."""
        return [r["analysis"] for r in self.rounds if r["analysis"]]


def seeded_rng(*parts) -> random.Random:
    """A random source keyed by `parts` (the run's seed first): the same parts give the same draws on a resume."""
    return random.Random(int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16))


def round_rng(seed: int, round_: int) -> random.Random:
    """The run's random source for one round: the same seed and round give the same draws on a resume."""
    return seeded_rng(seed, round_)
