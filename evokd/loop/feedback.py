"""Step 1 of a round: what the student got right and wrong on the latest batch (predicted before it
trained on it), as the teacher's weakness analysis sees it. The numbers come from the task kind
(`TaskKind.error_stats`); the teacher puts them into words (evokd.teacher.wording)."""

from __future__ import annotations

from evokd.loop.config import LoopConfig
from evokd.loop.guard import rolled_back
from evokd.loop.state import RunState, round_rng
from evokd.task_kinds import TaskKind
from evokd.teacher.teacher import Feedback

REVIEWED_MISTAKES = 4  # earlier hard mistakes replayed in a review round


def feedback_rows(rows: list[dict], rules: TaskKind) -> tuple[list[dict], list[dict]]:
    """(wrong, correct) of rows holding the answer and the student's prediction, as Feedback takes them."""
    tk, pk = rules.target_key, rules.pred_key
    wrong = [{"text": r["text"], "gold": r[tk], "pred": r[pk]} for r in rows if not rules.same(r[pk], r[tk])]
    correct = [{"text": r["text"], "gold": r[tk]} for r in rows if rules.same(r[pk], r[tk])]
    return wrong, correct


def select_feedback(state: RunState, round_: int, config: LoopConfig, rules: TaskKind, labels: list[str]) -> Feedback:
    """The latest kept batch with the student's predictions; every `review_every` rounds (from round 4
    on, counting round 2 as the first review) some earlier hard mistakes are replayed too."""
    tk, pk = rules.target_key, rules.pred_key
    # After rounds the eval guard rolled back, the student is the one the last kept round trained.
    latest = max((r["round"] for r in state.rounds if r["round"] < round_ and not rolled_back(r)), default=round_ - 1)
    rows = [r for r in state.accepted_in(latest) if r[pk] is not None]
    if config.review_every and round_ > 2 and round_ % config.review_every == 0:
        earlier = [r for r in state.accepted if r["round"] < round_ - 1 and r["intent"] == "hard"
                   and r[pk] is not None and not rules.same(r[pk], r[tk])]
        rows += round_rng(config.seed, round_).sample(earlier, min(len(earlier), REVIEWED_MISTAKES))
    wrong, correct = feedback_rows(rows, rules)
    history = [r[rules.headline[0]] for r in state.rounds]
    return Feedback(wrong=wrong, correct=correct, stats=rules.error_stats(rows, labels), score_history=history)
