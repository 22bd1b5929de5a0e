"""`--dry-run` asks the same source objects the run uses, so its plan cannot drift from the run.

For every strategy, the estimate's first-attempt teacher calls per round and step (what
`evokd generate --dry-run` prints as `calls_by_round`) must equal the calls the real run logs with
attempt 1. The teacher is the scripted TEST DOUBLE (real sst2 / WNUT-17 sentences with their gold
labels); top-ups are turned off, since they depend on the answers. Real DuckDB, MiniLM, tfidf/tagger.
"""

from __future__ import annotations

from collections import Counter

import pytest

from evokd.estimate import estimate_run
from evokd.filters import clean_generated
from evokd.loop import LoopConfig, RoundRunner
from evokd.run_dir import open_run
from evokd.strategies import STRATEGIES
from evokd.task import load_task
from evokd.teacher.calibration import CALIBRATION_TEXTS
from evokd.teacher.scripted import scripted_lm
from conftest import ner_examples, write_jsonl, write_ner_task

ROUNDS = 3  # round 1 (warm-up), round 2 (a review round for review_every=2), round 3


def _logged(out) -> list[dict[str, int]]:
    """First-attempt calls by round and step, as the run logged them."""
    with open_run(out) as store:
        calls = store.calls()
    by_round = [Counter() for _ in range(ROUNDS)]
    for c in calls:
        if c["attempt"] == 1:
            by_round[c["round"] - 1][c["step"]] += 1
    return [dict(c) for c in by_round]


def _filtered_before_labeling(out) -> list[int]:
    """Per round, the texts the duplicate filters rejected (they never reach the labeling step)."""
    with open_run(out) as store:
        rows = store.con.execute(
            "SELECT round, count(*) FROM samples WHERE reject_reason IN ('exact_duplicate', 'near_duplicate') "
            "GROUP BY round").fetchall()
    by_round = dict(rows)
    return [by_round.get(r, 0) for r in range(1, ROUNDS + 1)]


def _check(task_path, out, pool_rows, labels, strategy: str, **cfg) -> dict:
    task = load_task(task_path)
    config = LoopConfig(rounds=ROUNDS, per_round=4, strategy=strategy, student=cfg.pop("student", "tfidf"),
                        generation_topups=0, seed=3, **cfg)
    estimate = estimate_run(task, config, "scripted")
    RoundRunner(task, out, config, teacher_lm=scripted_lm(pool_rows, labels, seed=1), teacher_name="scripted").run()
    planned = estimate["calls_by_round"]
    if not config.strategy_spec.adds_samples:
        assert planned == [] and _logged(out) == [{}] * ROUNDS
        return estimate
    # the plan assumes every text reaches the labeling step; one the dedup filter dropped first (the
    # scripted teacher can pick a text it gave in an earlier round) is one labeling call fewer
    dropped = _filtered_before_labeling(out)
    expected = [{**r, "label": r["label"] - dropped[i]} if r.get("label") else r for i, r in enumerate(planned)]
    assert expected == _logged(out), (strategy, planned, dropped, _logged(out))
    # the totals the dry run prints are the same plan summed
    assert estimate["calls"] == sum(sum(r.values()) for r in planned)
    return estimate


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if not STRATEGIES[s].needs_pool])
def test_dry_run_plan_equals_the_run_without_a_pool(strategy, sst2_task, sst2_pool, tmp_path):
    estimate = _check(sst2_task, tmp_path / "run", sst2_pool, ["negative", "positive"], strategy)
    if STRATEGIES[strategy].needs_teacher:
        assert estimate["calls"] > 0


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if STRATEGIES[s].needs_pool])
def test_dry_run_plan_equals_the_run_with_a_pool(strategy, sst2_task, sst2_pool, tmp_path):
    pool = tmp_path / "pool.jsonl"
    write_jsonl(pool, [{"text": r["text"]} for r in sst2_pool[300:420]])  # the teacher labels what is taken
    estimate = _check(sst2_task, tmp_path / "run", sst2_pool, ["negative", "positive"], strategy, pool=str(pool))
    # round 1 also asks about the random pool texts that calibrate the teacher's labels (50 of the 120)
    assert [r["label"] for r in estimate["calls_by_round"]] == [4 + CALIBRATION_TEXTS, 4, 4]


@pytest.mark.parametrize("strategy", ["evokd", "evokd-paper", "pool-evokd"])
def test_dry_run_plan_equals_the_run_on_ner(strategy, tmp_path):
    task_path = write_ner_task(tmp_path / "task", ner_examples("dev", 40))
    # sentences the generation cleaner leaves as they are, so every generated text reaches the labeling step
    pool_rows = [r for r in ner_examples("train", 450, skip=100, min_tokens=6) if clean_generated(r["text"]) == r["text"]]
    cfg = {"student": "tagger"}
    if STRATEGIES[strategy].needs_pool:
        write_jsonl(tmp_path / "pool.jsonl", [{"text": r["text"]} for r in pool_rows[100:]])
        cfg["pool"] = str(tmp_path / "pool.jsonl")
    labels = load_task(task_path).label_names
    _check(task_path, tmp_path / "run", pool_rows, labels, strategy, **cfg)
