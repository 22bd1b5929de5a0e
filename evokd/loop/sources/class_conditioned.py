"""Class-conditioned generation: "write N hard (or easy) texts whose label is X".

`class` splits the round's budget over labels by the student's per-class error (with a floor) and
aims at the weakness analysis; its warm-up round and `static` split evenly and ask for natural,
varied texts with no analysis."""

from __future__ import annotations

import math
from collections import Counter

from evokd.loop.attributes import SUBTOPICS_PER_LABEL, RequestProperties
from evokd.loop.candidates import Candidate
from evokd.loop.sources.base import Round, Source, source


def class_budget(labels: list[str], n: int, round_: int, recent: list[dict] | None) -> dict[str, int]:
    """The round's budget per label. `recent` None: a fair split whose remainder rotates with the
    round. Otherwise one per label as a floor (when the budget allows), the rest in proportion to
    the student's smoothed error on each label over `recent` (predicted before training)."""
    k = len(labels)
    if recent is None:
        out = {lab: n // k for lab in labels}
        for i in range(n % k):
            out[labels[(round_ * n + i) % k]] += 1
        return out
    wrong, total = Counter(), Counter()
    for r in recent:
        total[r["label"]] += 1
        wrong[r["label"]] += r["student_pred"] != r["label"]
    weight = {lab: (wrong[lab] + 1) / (total[lab] + 2) for lab in labels}
    floor = 1 if n >= k else 0
    out = {lab: floor for lab in labels}
    rest = n - floor * k
    if rest:
        total_w = sum(weight.values())
        share = {lab: rest * weight[lab] / total_w for lab in labels}
        for lab in labels:
            out[lab] += int(share[lab])
        left = n - sum(out.values())
        for lab in sorted(labels, key=lambda lab: (share[lab] - int(share[lab]), weight[lab]), reverse=True)[:left]:
            out[lab] += 1
    return out


def described_labels(task) -> dict[str, str]:
    """Label name -> "NAME (description)", what class-conditioned generation is told to write."""
    return {lab.name: f"{lab.name} ({lab.description.strip().rstrip('.')})" if lab.description else lab.name
            for lab in task.labels}


def kind_request(kinds: list[str]) -> str:
    """What the `kind` field asks for a call whose texts have these kinds, in order: "hard", or
    "2 hard, then 1 easy" (the class-generation instructions say hard ones come first)."""
    distinct = list(dict.fromkeys(kinds))
    if len(distinct) == 1:
        return distinct[0]
    return ", then ".join(f"{kinds.count(k)} {k}" for k in distinct)


@source("class")
class ClassSource(Source):
    """Per label, hard and easy texts (varied ones in the warm-up round). The label goes to the teacher
    with its description: a 1.5B model given only "positive" and a hard-text brief often writes the
    opposite class."""

    _properties: RequestProperties | None = None

    def varied(self, round_: int) -> bool:
        """Whether the round asks for natural, varied texts (no aim, even split)."""
        return self.ctx.plan.warmup(round_)

    def properties(self) -> RequestProperties | None:
        """What each request also asks for (a length, a subtopic, the task's attributes) when the strategy
        draws attributes (`evokd-attr`), else None."""
        if not self.ctx.plan.strategy.attributes:
            return None
        if self._properties is None:
            described = described_labels(self.ctx.task)
            self._properties = RequestProperties(
                self.ctx.seeds, self.ctx.task.attributes, self.ctx.config.seed,
                lambda round_, label: self.ctx.teacher.subtopics_of(round_, described[label], SUBTOPICS_PER_LABEL))
        return self._properties

    def even(self, round_: int) -> bool:
        return self.varied(round_) or not self.ctx.plan.strategy.class_budget

    def budget(self, round_: int, state) -> dict[str, int]:
        n, labels = self.ctx.config.per_round, self.ctx.labels
        if state is None or self.even(round_):
            return class_budget(labels, n, round_, None)
        recent = [r for r in state.accepted if r["round"] >= round_ - 2 and r["student_pred"] is not None]
        return class_budget(labels, n, round_, recent)

    def kinds(self, round_: int, n: int, attempt: int) -> list[str]:
        """The kind of each of one label's `n` texts, in the order one call asks for them: varied; hard
        only; hard then easy halves (in one list the teacher sees its hard texts and does not repeat
        them as easy ones, and the prompt is read once, not twice); or, for a top-up, one kind, hard
        then easy in turn."""
        if self.varied(round_):
            return ["varied"] * n
        if not self.ctx.config.use_easy:
            return ["hard"] * n
        if attempt == 0 and n > 1:
            return ["hard"] * math.ceil(n / 2) + ["easy"] * (n - math.ceil(n / 2))
        return ["easy" if attempt and attempt % 2 == 0 else "hard"] * n

    def batch(self, rnd: Round, need, attempt: int) -> list[Candidate]:
        """One generation call per label that still needs texts."""
        described = described_labels(self.ctx.task)
        weaknesses = (None if self.varied(rnd.number) else rnd.aim) or "(not used: write natural, varied examples)"
        drawn = self.properties()
        out: list[Candidate] = []
        for label, n in need.items():
            if n <= 0:
                continue
            kinds = self.kinds(rnd.number, n, attempt)
            texts = self.ctx.teacher.generate_for_label(
                rnd.number, weaknesses, kind_request(kinds), described[label], n, attempt_key=str(attempt),
                properties=drawn.draw(rnd.number, label, attempt) if drawn else None)
            # a text's kind is the one asked at its position; a short answer lost the last ones (easy)
            out += [Candidate(t, kind, intended_label=label) for t, kind in zip(texts, kinds)]
        return out

    def plan_calls(self, round_: int, need) -> dict[str, int]:
        calls = {"generate": sum(1 for n in need.values() if n > 0)}
        if self.ctx.plan.strategy.attributes and round_ == 1:  # each label's subtopics, listed on its first request
            calls["subtopics"] = calls["generate"]
        return calls


@source("static")
class StaticSource(ClassSource):
    """ZeroGen-style: 'write examples of class X' every round, an even split, no feedback."""

    def varied(self, round_: int) -> bool:
        return True
