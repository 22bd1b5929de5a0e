"""The eval guard (do no harm): a round's texts are kept only if the student trained with them scores
on the task's eval file at least the guard's bar: the seed-only student's score (round 0's), or the
best committed score minus GUARD_MARGIN where that is higher. A round below the bar is rolled back: its
texts stay in the store, rejected as `eval_drop`, the student stays as it was, and the next round's
weakness analysis sees the last kept round's batch again. So a run ships no data that scores its
student below the seed-only student on that file, nor data that slides it down round by round.

Why both: with the seed-only floor alone, rounds that each cost a point or two pass until the student
has lost what the run gained. Replayed on the local-teacher-30min cells with 200 validation rows per
draw that no cell saw (benchmarks/results/local-teacher-30min-guard-rules.md), `static` on sst2 with
mpnet (mislabeled invented texts, a slow slide) ended -0.7 +- 4.9 points against seed-only under the
floor alone (-7.4 on one draw) and +1.7 +- 0.5 under the bar with a 0.02 margin; on the default loop's
cells the margin moved the mean by 0.2 points or less. A margin of 0 (the best score so far) chases the
eval file's noise and drops good rounds. The score is the task kind's selection metric (macro-F1;
entity F1 for NER). The guard needs an eval file of at least GUARD_MIN_EVAL_ROWS rows: on fewer, one
round's score moves by more than the round changes.
"""

from __future__ import annotations

from dataclasses import dataclass

EVAL_DROP = "eval_drop"  # the reject reason of a rolled-back round's texts
GUARD_MIN_EVAL_ROWS = 200  # fewer eval rows: the guard does not run (and the run summary says why)
GUARD_MARGIN = 0.02  # a round may score this much below the best committed score (of the selection metric)


@dataclass(frozen=True)
class GuardVerdict:
    """What the guard decided about one round: its student's score and the seed-only student's."""

    kept: bool
    score: float  # the round's student, trained with its texts, on the eval file
    seed_only: float  # the seed-only student (round 0) on the eval file: the floor
    bar: float  # what the round had to reach: the floor, or the best committed score minus GUARD_MARGIN
    metric: str

    def record(self) -> dict:
        """The verdict as the round record's `training["guard"]` holds it."""
        return {"kept": self.kept, "score": round(self.score, 4), "seed_only": round(self.seed_only, 4),
                "bar": round(self.bar, 4), "metric": self.metric}


def score_column(rules) -> str:
    """The round record's column holding the guard's score (eval_macro_f1, eval_entity_f1)."""
    return f"eval_{rules.selection_metric}"


def inactive_reason(enabled: bool, eval_rows: list[dict] | None) -> str | None:
    """Why the guard does not run for a run with these settings and eval rows; None when it runs."""
    if not enabled:
        return "--no-eval-guard"
    if not eval_rows:
        return "the task has no eval file"
    if len(eval_rows) < GUARD_MIN_EVAL_ROWS:
        return f"the eval file has {len(eval_rows)} rows; it needs {GUARD_MIN_EVAL_ROWS}"
    return None


def seed_only_score(rounds: list[dict], rules) -> float | None:
    """The seed-only student's eval score, from a run's committed round 0; None without one."""
    first = next((r for r in rounds if r["round"] == 0), None)
    return None if first is None else first.get(score_column(rules))


def judge(rules, report: dict, rounds: list[dict]) -> GuardVerdict | None:
    """Keep or roll back the round whose student scored `report` on the eval file, given the committed
    `rounds` (a rolled-back round's record holds the kept student's score); None when round 0 has no
    score to compare with."""
    floor = seed_only_score(rounds, rules)
    if floor is None:
        return None
    column = score_column(rules)
    best = max((r[column] for r in rounds if r.get(column) is not None), default=floor)
    bar = max(floor, best - GUARD_MARGIN)
    score = rules.scores(report)[rules.selection_metric]
    return GuardVerdict(kept=score >= bar, score=score, seed_only=floor, bar=bar, metric=rules.selection_metric)


def rolled_back(round_record: dict) -> bool:
    """Whether the guard rolled this committed round back."""
    guard = (round_record.get("training") or {}).get("guard")
    return bool(guard) and not guard["kept"]


def summary(rounds: list[dict], reason: str | None) -> str | None:
    """One line for the run summary: which rounds the guard rolled back, or why it did not run; None
    for a run without rounds that add texts."""
    added = [r for r in rounds if r["round"] > 0]
    if not added:
        return None
    if reason is not None:
        return f"eval guard: did not run ({reason}); every round's texts were kept"
    back = [r for r in added if rolled_back(r)]
    if not back:
        return (f"eval guard: kept all {len(added)} rounds (none took the student's eval score below the seed-only "
                f"one, or {GUARD_MARGIN:g} below the best so far)")
    metric = back[0]["training"]["guard"]["metric"]
    floor = back[0]["training"]["guard"]["seed_only"]
    listed = ", ".join(f"{r['round']} ({r['training']['guard']['score']:.3f} < "
                       f"{r['training']['guard'].get('bar', floor):.3f})" for r in back)  # runs before the margin: no bar
    return (f"eval guard: rolled back {len(back)} of {len(added)} rounds whose texts took the student's eval {metric} "
            f"below the seed-only student's {floor:.3f}, or {GUARD_MARGIN:g} below the best so far: round {listed}; "
            f"their texts are in the store, rejected as {EVAL_DROP}")
