"""AugGPT-style augmentation: the teacher rewrites the seeds; each rewrite keeps its seed's label."""

from __future__ import annotations

import math

from evokd.loop.candidates import Candidate
from evokd.loop.sources.base import Round, Source, source

PER_SEED = 2  # rewrites asked of each seed


@source("paraphrase")
class ParaphraseSource(Source):
    """Two rewrites per seed, seeds taken in turn (rotating with the round and the top-up)."""

    labels_itself = True  # each rewrite keeps its seed's label

    def batch(self, rnd: Round, need, attempt: int) -> list[Candidate]:
        seeds, n = self.ctx.seeds, need[None]
        calls = math.ceil(n / PER_SEED)
        start = ((rnd.number - 1) * math.ceil(self.ctx.config.per_round / PER_SEED) + attempt * calls) % len(seeds)
        out: list[Candidate] = []
        for i in range(calls):
            seed = seeds[(start + i) % len(seeds)]
            k = min(PER_SEED, n - i * PER_SEED)
            for t in self.ctx.teacher.paraphrase_text(rnd.number, seed["text"], seed["label"], k, attempt_key=str(attempt)):
                out.append(Candidate(t, "paraphrase", intended_label=seed["label"], teacher_label=seed["label"],
                                     labeler="seed", query=seed["text"]))
        return out

    def plan_calls(self, round_: int, need) -> dict[str, int]:
        return {"paraphrase": math.ceil(need[None] / PER_SEED)}
