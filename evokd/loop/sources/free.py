"""The paper's step 3: hard and easy texts aimed at the weakness analysis, with no intended label."""

from __future__ import annotations

import math

from evokd.filters import text_hash
from evokd.loop.candidates import Candidate
from evokd.loop.sources.base import Round, Source, source


@source("free")
class FreeSource(Source):
    """Hard and easy texts, labeled in a separate call (or generated with their labels when separate
    labeling is off). Top-ups ask for what is still missing of each kind."""

    def split(self) -> tuple[int, int]:
        cfg = self.ctx.config
        n_hard = cfg.per_round if not cfg.use_easy else math.ceil(cfg.per_round / 2)
        return n_hard, cfg.per_round - n_hard

    def generate(self, rnd: Round) -> list[Candidate]:
        """Up to `per_round` hard and easy texts (and top-ups). A weak teacher often copies its hard
        texts into the easy list: copies stay candidates (the filter rejects and records them) but do
        not count toward the batch, so the next top-up asks for what is still missing."""
        cfg, teacher = self.ctx.config, self.ctx.teacher
        n_hard, n_easy = self.split()
        previous = rnd.state.analyses
        candidates: list[Candidate] = []
        unique = {"hard": set(), "easy": set()}
        seen: set[str] = set()
        for _ in range(1 + cfg.generation_topups):
            need_hard, need_easy = n_hard - len(unique["hard"]), n_easy - len(unique["easy"])
            if need_hard <= 0 and need_easy <= 0:
                break
            need_hard, need_easy = max(need_hard, 0), max(need_easy, 0)
            if cfg.separate_labeling:
                h, e = teacher.generate_inputs(rnd.number, rnd.aim, previous, need_hard, need_easy)
                batch = [Candidate(t, "hard") for t in h[:need_hard]] + [Candidate(t, "easy") for t in e[:need_easy]]
            else:
                h, e = teacher.generate_labeled_inputs(rnd.number, rnd.aim, previous, need_hard, need_easy)
                batch = ([Candidate(t, "hard", teacher_label=lab, labeler="teacher") for t, lab in h[:need_hard]]
                         + [Candidate(t, "easy", teacher_label=lab, labeler="teacher") for t, lab in e[:need_easy]])
            for c in batch:
                h_ = text_hash(c.text)
                if h_ not in seen:
                    seen.add(h_)
                    unique[c.intent].add(h_)
                candidates.append(c)
        return candidates

    def collect(self, rnd: Round) -> list[Candidate]:
        candidates = self.generate(rnd)
        self.filter_and_label(rnd, candidates)
        return candidates

    def batch(self, rnd: Round, need, attempt: int) -> list[Candidate]:
        """As a pool-evokd query source (NER): the free texts of one generation, up to the budget."""
        return self.generate(rnd)[:need[None]]

    def plan_calls(self, round_: int, need) -> dict[str, int]:
        return {"generate" if self.ctx.config.separate_labeling else "generate_labeled": 1}
