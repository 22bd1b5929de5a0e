"""The eval guard (evokd.loop.guard): a round whose texts lower the student's score on the task's eval
file is rolled back. Runs use the scripted TEST DOUBLE teacher with real MiniLM embeddings, a real
DuckDB store and real students; the verdict and summary tests are logic tests on plain records."""

import json

import duckdb

from evokd.compare import compare
from evokd.loop import LoopConfig, RoundRunner
from evokd.loop import guard
from evokd.loop.feedback import select_feedback
from evokd.loop.state import RunState
from evokd.progress import print_summary
from evokd.task import load_task
from evokd.task_kinds import kind_rules
from evokd.teacher.scripted import scripted_lm

RULES = kind_rules("classification")


def _round(n: int, f1: float, kept: bool | None = None, seed_only: float = 0.7) -> dict:
    training = None if kept is None else {"guard": {"kept": kept, "score": f1 if kept else seed_only - 0.03,
                                                    "seed_only": seed_only, "metric": "macro_f1"}}
    return {"round": n, "eval_macro_f1": f1, "training": training, "eval_accuracy": f1}


def test_a_round_is_kept_only_when_its_student_scores_at_least_the_seed_only_student_and_near_the_best():
    report = RULES.report(["a", "b", "a", "b"], ["a", "b", "a", "a"], ["a", "b"])  # macro-F1 0.733
    assert guard.GUARD_MARGIN == 0.02
    kept = guard.judge(RULES, report, [_round(0, 0.70), _round(1, 0.75, kept=True)])
    assert kept.kept and kept.seed_only == 0.70 and round(kept.score, 3) == 0.733  # below round 1 by < 0.02
    assert round(kept.bar, 3) == 0.73
    # 0.027 below the best round: rolled back although above seed-only (a slide, round by round)
    slid = guard.judge(RULES, report, [_round(0, 0.70), _round(1, 0.76, kept=True), _round(2, 0.76, kept=False)])
    assert not slid.kept and round(slid.bar, 3) == 0.74 and slid.seed_only == 0.70
    dropped = guard.judge(RULES, report, [_round(0, 0.74)])
    assert not dropped.kept and dropped.seed_only == 0.74 == dropped.bar
    assert guard.judge(RULES, report, []) is None
    assert dropped.record() == {"kept": False, "score": 0.7333, "seed_only": 0.74, "bar": 0.74, "metric": "macro_f1"}


def test_the_guard_says_why_it_does_not_run():
    rows = [{"text": "t", "label": "a"}] * guard.GUARD_MIN_EVAL_ROWS
    assert guard.inactive_reason(True, rows) is None
    assert guard.inactive_reason(False, rows) == "--no-eval-guard"
    assert guard.inactive_reason(True, None) == "the task has no eval file"
    assert guard.inactive_reason(True, rows[:50]) == f"the eval file has 50 rows; it needs {guard.GUARD_MIN_EVAL_ROWS}"
    rounds = [_round(0, 0.7), _round(1, 0.72, kept=True), _round(2, 0.72, kept=False), _round(3, 0.75, kept=True)]
    assert guard.summary(rounds[:1], None) is None  # seed-only: nothing to guard
    assert guard.summary(rounds, "the task has no eval file") == (
        "eval guard: did not run (the task has no eval file); every round's texts were kept")
    assert guard.summary(rounds[:2], None) == (
        "eval guard: kept all 1 rounds (none took the student's eval score below the seed-only one, or 0.02 below "
        "the best so far)")
    assert guard.summary(rounds, None) == (  # a record from before the margin has no bar: the floor was its bar
        "eval guard: rolled back 1 of 3 rounds whose texts took the student's eval macro_f1 below the seed-only "
        "student's 0.700, or 0.02 below the best so far: round 2 (0.670 < 0.700); their texts are in the store, "
        "rejected as eval_drop")
    rounds[2]["training"]["guard"].update(score=0.705, bar=0.72)
    assert "round 2 (0.705 < 0.720)" in guard.summary(rounds, None)


def test_after_a_rolled_back_round_the_analysis_sees_the_last_kept_batch():
    kept = [{"round": 1, "text": f"kept {i}", "label": "a", "student_pred": "b", "intent": "hard"} for i in range(3)]
    state = RunState(accepted=kept, rounds=[_round(0, 0.7), _round(1, 0.72, kept=True), _round(2, 0.72, kept=False)])
    feedback = select_feedback(state, 3, LoopConfig(review_every=0), RULES, ["a", "b"])
    assert [w["text"] for w in feedback.wrong] == ["kept 0", "kept 1", "kept 2"]


def _run(task_path, pool, out, **cfg):
    task = load_task(task_path)
    # TEST DOUBLE teacher that labels 90% of texts wrongly: the texts it labels make the student worse, weighed by
    # its confidence (the default, auto, would fuse such labels with the seed student's view and undo much of the harm)
    lm = scripted_lm(pool, task.label_names, seed=1, label_noise=0.9)
    loop = RoundRunner(task, out, LoopConfig(rounds=3, per_round=16, strategy="evokd-paper", student="minilm",
                                             noise="confidence", **cfg),
                       teacher_lm=lm, teacher_name="scripted")
    return loop, loop.run()


def test_a_round_that_lowers_the_eval_score_is_rolled_back_and_its_texts_are_not_shipped(sst2_task, sst2_pool, tmp_path,
                                                                                         capsys):
    loop, rounds = _run(sst2_task, sst2_pool, tmp_path / "run")
    assert loop.guard_off is None  # 200 eval rows
    back = [r for r in rounds if guard.rolled_back(r)]
    assert back, "a teacher that mislabels 90% of its texts lowered no round's score"
    print_summary(rounds, tmp_path / "run", loop.data, loop.unconfirmed, loop.guard_off)
    assert f"eval guard: rolled back {len(back)} of 3 rounds" in " ".join(capsys.readouterr().out.split())
    # no round ends below the seed-only student on the eval file, and every later round records a verdict
    assert all(r["eval_macro_f1"] >= rounds[0]["eval_macro_f1"] for r in rounds)
    assert all(r["training"]["guard"]["metric"] == "macro_f1" for r in rounds[1:] if r["training"].get("guard"))
    for r in back:
        assert r["n_accepted"] == 0 and r["rejected_by_reason"]["eval_drop"] > 0
        verdict = r["training"]["guard"]
        assert verdict["score"] < verdict["bar"] and verdict["bar"] >= verdict["seed_only"] == round(rounds[0]["eval_macro_f1"], 4)
    con = duckdb.connect(str(tmp_path / "run" / "evokd.duckdb"), read_only=True)
    dropped = con.execute("SELECT text, teacher_label, status FROM samples WHERE reject_reason = 'eval_drop'").fetchall()
    con.close()
    assert len(dropped) == sum(r["rejected_by_reason"]["eval_drop"] for r in back)
    assert all(status == "rejected" and label is not None for _, label, status in dropped)  # kept in the store
    shipped = {json.loads(line)["text"] for line in (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()}
    assert not shipped & {text for text, _, _ in dropped}
    compared = compare(tmp_path / "run", teacher_n=0)
    assert compared["rolled_back_on_these_rows"] == [r["round"] for r in back]
    assert compared["final"]["train_rows"] == len(shipped)

    # The same run without the guard keeps the mislabeled texts and ends below its seed-only student.
    unguarded = RoundRunner(load_task(sst2_task), tmp_path / "off", LoopConfig(
        rounds=3, per_round=16, strategy="evokd-paper", student="minilm", noise="confidence", eval_guard=False),
        teacher_lm=scripted_lm(sst2_pool, loop.labels, seed=1, label_noise=0.9), teacher_name="scripted")
    plain = unguarded.run()
    assert unguarded.guard_off == "--no-eval-guard"
    assert not any(guard.rolled_back(r) for r in plain)
    assert plain[-1]["eval_macro_f1"] < plain[0]["eval_macro_f1"]


def test_compare_says_when_the_final_student_was_picked_on_its_eval_rows():
    """`evokd compare` renders a note when the run's eval guard rolled rounds back on the rows it compares on."""
    from evokd.compare import render

    part = {"student": "minilm", "train_rows": 20, "eval": {"accuracy": 0.7}, "on_teacher_rows": {}}
    result = {"task": "sst2", "kind": "classification", "eval": {"data": "eval.jsonl", "n": 872}, "teacher": None,
              "seed_only": part, "final": part, "rolled_back_on_these_rows": [2, 5]}
    out = "\n".join(render(result))
    assert "the run's eval guard rolled back rounds 2, 5 on these rows" in out
    assert "rolled back" not in "\n".join(render({**result, "rolled_back_on_these_rows": []}))
