"""The properties one class-conditioned generation request asks for (AttrPrompt-style diversity, the
`evokd-attr` strategy).

Asked again and again for "hard texts of label X", a small teacher writes the same few texts in new
words; hundreds per label collapse onto a handful of phrasings. Each request here also names one
drawn value per attribute: a length drawn from the seeds' own lengths (so invented texts are as long
as the user's real ones), a subtopic of the label from a list the teacher writes once per label and
run, and one value of every attribute the task file lists (`attributes: {NAME: [values]}`). The
draws are seeded by the run's seed, the round, the label and the attempt, and the subtopics are asked
greedily, so a resumed run (which asks for them again) asks what an uninterrupted one would have asked.
"""

from __future__ import annotations

from typing import Callable

from evokd.loop.state import seeded_rng

SUBTOPICS_PER_LABEL = 8  # the teacher lists this many subtopics per label, once per run
LENGTH_JITTER = (0.8, 1.25)  # a drawn seed length is scaled by a factor in this range


class RequestProperties:
    """Draws the properties of each generation request of a run. `subtopics_of(round, label)` asks the
    teacher for a label's subtopics (called once per label, in the round of its first request)."""

    def __init__(self, seeds: list[dict], task_attributes: dict[str, list[str]], run_seed: int,
                 subtopics_of: Callable[[int, str], list[str]]):
        self.seed_words = sorted(len(r["text"].split()) for r in seeds) or [12]
        self.task_attributes = dict(task_attributes)
        self.run_seed = run_seed
        self._subtopics_of = subtopics_of
        self._subtopics: dict[str, list[str]] = {}

    def subtopics(self, round_: int, label: str) -> list[str]:
        """The label's subtopics, asked of the teacher on first use ([] when it gave none usable)."""
        if label not in self._subtopics:
            self._subtopics[label] = self._subtopics_of(round_, label)
        return self._subtopics[label]

    def draw(self, round_: int, label: str, attempt: int) -> str:
        """The properties of one request for `label`'s texts, e.g. "length: about 14 words; subtopic: pricing"."""
        rng = seeded_rng(self.run_seed, round_, label, attempt)
        words = max(3, round(rng.choice(self.seed_words) * rng.uniform(*LENGTH_JITTER)))
        parts = [f"length: about {words} words"]
        topics = self.subtopics(round_, label)
        if topics:
            parts.append(f"subtopic: {rng.choice(topics)}")
        parts += [f"{name}: {rng.choice(values)}" for name, values in self.task_attributes.items()]
        return "; ".join(parts)
