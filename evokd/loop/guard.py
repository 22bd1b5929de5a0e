"""The eval guard (do no harm): a round's texts are kept only if the student trained with them scores
on the task's eval file at least as well as the best student the run has kept so far (round 0's, the
seed-only student, first). A round that lowers it is rolled back: its texts stay in the store,
rejected as `eval_drop`, the student stays as it was, and the next round's weakness analysis sees the
last kept round's batch again. So a run ships no data that scores its student below the seed-only
student on that file.

The score is the task kind's selection metric (macro-F1; entity F1 for NER). The guard needs an eval
file of at least GUARD_MIN_EVAL_ROWS rows: on fewer, one round's score moves by more than the round
changes (measured on the local-teacher-30min cells, benchmarks/results/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

EVAL_DROP = "eval_drop"  # the reject reason of a rolled-back round's texts
GUARD_MIN_EVAL_ROWS = 200  # fewer eval rows: the guard does not run (and the run summary says why)


@dataclass(frozen=True)
class GuardVerdict:
    """What the guard decided about one round: its student's score, the best kept score before it."""

    kept: bool
    score: float  # the round's student, trained with its texts, on the eval file
    best: float  # the best score of a student the run kept before this round
    metric: str

    def record(self) -> dict:
        """The verdict as the round record's `training["guard"]` holds it."""
        return {"kept": self.kept, "score": round(self.score, 4), "best": round(self.best, 4), "metric": self.metric}


def score_column(rules) -> str:
    """The round record's column holding the guard's score (eval_macro_f1, eval_entity_f1)."""
    return f"eval_{rules.selection_metric}"


def inactive_reason(enabled: bool, eval_rows: list[dict] | None) -> str | None:
    """Why the guard does not run for a run with these settings and eval rows; None when it runs."""
    if not enabled:
        return "off (--no-eval-guard)"
    if not eval_rows:
        return "the task has no eval file"
    if len(eval_rows) < GUARD_MIN_EVAL_ROWS:
        return f"the eval file has {len(eval_rows)} rows; it needs {GUARD_MIN_EVAL_ROWS}"
    return None


def best_kept(rounds: list[dict], rules) -> float | None:
    """The best eval score of the students a run kept, from its committed rounds (a rolled-back round
    records its kept student's score, so every round counts); None before any round has one."""
    scores = [r[score_column(rules)] for r in rounds if r.get(score_column(rules)) is not None]
    return max(scores) if scores else None


def judge(rules, report: dict, rounds: list[dict]) -> GuardVerdict | None:
    """Keep or roll back the round whose student scored `report` on the eval file, given the committed
    `rounds`; None when no committed round has a score to compare with."""
    best = best_kept(rounds, rules)
    if best is None:
        return None
    score = rules.scores(report)[rules.selection_metric]
    return GuardVerdict(kept=score >= best, score=score, best=best, metric=rules.selection_metric)


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
        return f"eval guard: kept all {len(added)} rounds (none lowered the student's score on the eval file)"
    metric = back[0]["training"]["guard"]["metric"]
    listed = ", ".join(f"{r['round']} ({r['training']['guard']['score']:.3f} < {r['training']['guard']['best']:.3f})"
                       for r in back)
    return (f"eval guard: rolled back {len(back)} of {len(added)} rounds whose texts lowered the student's eval "
            f"{metric}: round {listed}; their texts are in the store, rejected as {EVAL_DROP}")
