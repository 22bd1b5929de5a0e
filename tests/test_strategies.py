"""Strategies and pool mode through the real loop: real MiniLM, real DuckDB, real TF-IDF student.
The teacher is the scripted TEST DOUBLE (answers from real sst2 sentences, gold labels with
optional noise); the embedded model runs these strategies in tests/test_e2e_local.py."""

import duckdb
import pytest
from click.testing import CliRunner

from conftest import read_jsonl, write_jsonl
from evokd.cli import main
from evokd.loop import LoopConfig, RoundRunner, needs_teacher
from evokd.loop.sources import Context
from evokd.loop.sources import pool as pool_sources
from evokd.loop.sources.base import Round
from evokd.loop.sources.class_conditioned import ClassSource, class_budget, kind_request
from evokd.loop.state import RunState
from evokd.strategies import STRATEGIES
from evokd.task import load_task
from evokd.teacher.scripted import scripted_lm


def run(task_path, out, pool_rows, strategy, *, rounds=2, per_round=8, noise=0.0, teacher=True, **cfg):
    task = load_task(task_path)
    lm = scripted_lm(pool_rows, task.label_names, seed=1, label_noise=noise) if teacher else None
    # The eval guard is off unless a test turns it on: these tests count what each strategy adds, and on 200
    # eval rows the guard may roll back a round that happens to lower the student's score (test_eval_guard.py).
    cfg.setdefault("eval_guard", False)
    config = LoopConfig(rounds=rounds, per_round=per_round, strategy=strategy, **cfg)
    return RoundRunner(task, out, config, teacher_lm=lm, teacher_name="scripted").run()


def query(out, sql):
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def pool_file(tmp_path, sst2_pool):
    """400 real sst2 train sentences with their gold labels (the --oracle labels)."""
    return write_jsonl(tmp_path / "pool.jsonl", [{"text": r["text"], "label": r["label"]} for r in sst2_pool[:400]])


def test_every_strategy_is_selectable_and_described():
    assert {"seed-only", "static", "augment", "evokd", "evokd-paper", "evokd-no-easy", "evokd-no-correct",
            "evokd-no-review", "evokd-no-separate", "pool-random", "pool-uncertainty", "pool-evokd",
            "pool-errors"} <= set(STRATEGIES)
    result = CliRunner().invoke(main, ["strategies"])
    assert result.exit_code == 0
    for name in STRATEGIES:
        assert name in result.output


def test_default_evokd_warmup_then_class_conditioned_with_agreement(sst2_task, sst2_pool, tmp_path):
    out = tmp_path / "run"
    rounds = run(sst2_task, out, sst2_pool, "evokd", rounds=3, per_round=8, noise=0.15)
    assert [r["round"] for r in rounds] == [0, 1, 2, 3]
    # round 1 is the warm-up: varied texts of each class, no analysis
    assert rounds[1]["analysis"] is None and rounds[2]["analysis"]
    intents = dict(query(out, "SELECT intent, count(*) FROM samples WHERE round = 1 GROUP BY ALL"))
    assert set(intents) == {"varied"}
    later = {i for (i,) in query(out, "SELECT DISTINCT intent FROM samples WHERE round >= 2")}
    assert later == {"hard", "easy"}
    # every generated text carries the class it was written for; accepted ones agree with the labeler
    bad = query(out, "SELECT count(*) FROM samples WHERE source = 'generated' AND status = 'accepted' "
                     "AND (intended_label IS NULL OR label != intended_label OR labeler != 'teacher')")
    assert bad == [(0,)]
    off = query(out, "SELECT count(*) FROM samples WHERE reject_reason = 'label_not_intended'")[0][0]
    assert off > 0  # the noisy labeler disagreed sometimes, and those texts were dropped, not kept
    # top-up calls ask again for what was rejected, so rounds stay close to the budget (at most 2 top-ups)
    # (first attempts: one call per label and round, 3 x 2; the rejections above made the rest)
    generate_calls = query(out, "SELECT count(*) FROM calls WHERE step = 'generate'")[0][0]
    assert generate_calls > 3 * 2
    accepted = [r["n_accepted"] for r in rounds[1:]]
    assert max(accepted) <= 8 and sum(accepted) >= 20, (accepted, [r["rejected_by_reason"] for r in rounds])


def test_class_budget_follows_student_errors_with_a_floor(sst2_task, sst2_pool, tmp_path):
    task = load_task(sst2_task)
    loop = RoundRunner(task, tmp_path / "r", LoopConfig(per_round=8), teacher_lm=None)

    # a latest batch with 5/6 negative wrong, 0/6 positive wrong
    rows = [{"round": 1, "label": "negative", "student_pred": "positive"}] * 5
    rows += [{"round": 1, "label": "negative", "student_pred": "negative"}]
    rows += [{"round": 1, "label": "positive", "student_pred": "positive"}] * 6
    labels = loop.labels
    budget = class_budget(labels, 8, 2, rows)
    assert sum(budget.values()) == 8 and budget["positive"] >= 1 and budget["negative"] > budget["positive"]
    even = class_budget(labels, 8, 2, None)
    assert even == {"negative": 4, "positive": 4}
    # the class source asks for the weighted split from round 2 on, the even one in its warm-up round
    source = ClassSource(Context(task, loop.plan, [], None, None, None, lambda *a, **k: None))
    assert source.budget(2, RunState(accepted=rows)) == budget and source.budget(1, RunState(accepted=rows)) == even


class _RecordingTeacher:
    """TEST DOUBLE: records class-generation requests and answers each with numbered texts."""

    def __init__(self, short_by: int = 0):
        self.requests: list[tuple[str, str, int]] = []
        self.properties: list[str | None] = []  # what each request named besides its label (evokd-attr)
        self.subtopic_requests: list[tuple[int, str, int]] = []
        self.short_by = short_by  # write this many texts fewer than asked

    def generate_for_label(self, round_, weaknesses, kind, label, n, *, attempt_key="", properties=None):
        self.requests.append((kind, label.split(" (")[0], n))
        self.properties.append(properties)
        return [f"{label} text {i}" for i in range(n - self.short_by)]

    def subtopics_of(self, round_, label, n):
        self.subtopic_requests.append((round_, label.split(" (")[0], n))
        return [f"{label.split(' (')[0]} topic {i}" for i in range(n)]


def test_class_source_asks_hard_then_easy_in_one_call_per_label(sst2_task, tmp_path):
    task = load_task(sst2_task)
    loop = RoundRunner(task, tmp_path / "r", LoopConfig(per_round=8), teacher_lm=None)
    teacher = _RecordingTeacher()
    source = ClassSource(Context(task, loop.plan, [], teacher, None, None, lambda *a, **k: None))
    rnd = Round(number=2, state=RunState(), feedback=None, aim="- misses negation", student=None)
    batch = source.batch(rnd, {"negative": 3, "positive": 1}, attempt=0)
    # one call per label: hard and easy in one list (hard first), a single text asked as hard
    assert teacher.requests == [("2 hard, then 1 easy", "negative", 3), ("hard", "positive", 1)]
    assert [(c.intended_label, c.intent) for c in batch] == [
        ("negative", "hard"), ("negative", "hard"), ("negative", "easy"), ("positive", "hard")]
    assert source.plan_calls(2, {"negative": 3, "positive": 1}) == {"generate": 2}
    # top-ups ask one kind for what is missing, hard then easy in turn
    teacher.requests.clear()
    source.batch(rnd, {"negative": 2, "positive": 0}, attempt=1)
    source.batch(rnd, {"negative": 2, "positive": 0}, attempt=2)
    assert teacher.requests == [("hard", "negative", 2), ("easy", "negative", 2)]
    # the warm-up round asks for varied texts; a short answer keeps the kinds of the positions it filled
    short = _RecordingTeacher(short_by=1)
    source = ClassSource(Context(task, loop.plan, [], short, None, None, lambda *a, **k: None))
    assert [c.intent for c in source.batch(rnd, {"negative": 3}, attempt=0)] == ["hard", "hard"]
    warm = Round(number=1, state=RunState(), feedback=None, aim=None, student=None)
    source.batch(warm, {"negative": 3}, attempt=0)
    assert short.requests[-1] == ("varied", "negative", 3)


def test_evokd_attr_names_a_seed_like_length_a_listed_subtopic_and_the_tasks_attributes(sst2_task, tmp_path):
    """evokd-attr: every request for a label's texts names drawn properties; each label's subtopics are
    asked once per run; the draws repeat for the same run seed, round, label and attempt, and vary otherwise."""
    sst2_task.write_text(sst2_task.read_text() + "attributes:\n  aspect: [acting, plot, music]\n", encoding="utf-8")
    task = load_task(sst2_task)
    assert task.attributes == {"aspect": ["acting", "plot", "music"]}
    loop = RoundRunner(task, tmp_path / "r", LoopConfig(per_round=8, strategy="evokd-attr"), teacher_lm=None)
    teacher = _RecordingTeacher()
    seeds = task.seed_rows()
    source = ClassSource(Context(task, loop.plan, seeds, teacher, None, None, lambda *a, **k: None))
    rnd = Round(number=2, state=RunState(), feedback=None, aim="- misses negation", student=None)
    for attempt in range(3):
        source.batch(rnd, {"negative": 3, "positive": 2}, attempt=attempt)
    assert teacher.subtopic_requests == [(2, "negative", 8), (2, "positive", 8)]  # once per label, in order of use
    words = [len(r["text"].split()) for r in seeds]
    for label, props in zip([r[1] for r in teacher.requests], teacher.properties):
        length, subtopic, aspect = props.split("; ")
        n = int(length.removeprefix("length: about ").removesuffix(" words"))
        assert 0.8 * min(words) - 1 <= n <= 1.25 * max(words) + 1
        assert subtopic.startswith(f"subtopic: {label} topic ") and aspect.split(": ")[1] in task.attributes["aspect"]
    assert len(set(teacher.properties)) > 1  # attempts draw anew
    drawn = source.properties()
    assert drawn.draw(2, "negative", 0) == teacher.properties[0] and drawn.draw(3, "negative", 0) != drawn.draw(2, "negative", 0)
    assert source.plan_calls(1, {"negative": 4, "positive": 4}) == {"generate": 2, "subtopics": 2}
    assert source.plan_calls(2, {"negative": 4, "positive": 4}) == {"generate": 2}
    # the default strategy names no properties and lists no subtopics
    plain = _RecordingTeacher()
    default = ClassSource(Context(task, RoundRunner(task, tmp_path / "d", LoopConfig(per_round=8), teacher_lm=None).plan,
                                  seeds, plain, None, None, lambda *a, **k: None))
    default.batch(rnd, {"negative": 3}, attempt=0)
    assert plain.properties == [None] and plain.subtopic_requests == []


def test_evokd_attr_runs_through_the_loop_with_the_scripted_teacher(sst2_task, sst2_pool, tmp_path):
    """The real loop, DuckDB and student with the scripted TEST DOUBLE: the subtopics call is logged once
    per label, and the run accepts texts."""
    out = tmp_path / "run"
    rounds = run(sst2_task, out, sst2_pool, "evokd-attr", rounds=2, per_round=8)
    assert [r["round"] for r in rounds] == [0, 1, 2] and rounds[-1]["train_size"] > rounds[0]["train_size"]
    assert query(out, "SELECT step, round, count(*) FROM calls WHERE step = 'subtopics' AND ok GROUP BY ALL") == [
        ("subtopics", 1, 2)]


@pytest.mark.parametrize("attributes, expected", [
    ("attributes:\n  aspect: []\n", "attribute 'aspect' has no value"),
    ("attributes:\n  aspect: [acting, '  ']\n", "attribute 'aspect' has an empty value"),
    ("attributes: [acting]\n", "valid dictionary"),
])
def test_bad_task_attributes_are_one_line_naming_the_field(sst2_task, attributes, expected):
    from evokd.errors import InputError

    sst2_task.write_text(sst2_task.read_text() + attributes, encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_task(sst2_task)
    message = str(err.value)
    assert str(sst2_task) in message and "attributes" in message and expected in message and "\n" not in message


def test_kind_request_names_the_counts_hard_first():
    assert kind_request(["hard", "hard", "easy"]) == "2 hard, then 1 easy"
    assert kind_request(["varied"] * 4) == "varied"


def test_static_labels_by_intent_without_feedback(sst2_task, sst2_pool, tmp_path):
    out = tmp_path / "run"
    rounds = run(sst2_task, out, sst2_pool, "static", rounds=2, per_round=6)
    assert all(r["analysis"] is None for r in rounds)
    steps = {s for (s,) in query(out, "SELECT DISTINCT step FROM calls")}
    assert steps == {"generate"}  # no analysis, no labeling calls
    rows = query(out, "SELECT labeler, label = intended_label FROM samples WHERE status = 'accepted' AND round > 0")
    assert rows and all(lab == "intent" and same for lab, same in rows)
    per_label = dict(query(out, "SELECT label, count(*) FROM samples WHERE round = 1 AND status = 'accepted' GROUP BY ALL"))
    assert per_label == {"negative": 3, "positive": 3}


def test_augment_paraphrases_seeds_and_keeps_their_labels(sst2_task, sst2_pool, tmp_path):
    out = tmp_path / "run"
    run(sst2_task, out, sst2_pool, "augment", rounds=1, per_round=6)
    seeds = {r["text"]: r["label"] for r in read_jsonl(sst2_task.parent / "seeds.jsonl")}
    rows = query(out, "SELECT query, label, labeler, intent FROM samples WHERE round = 1 AND status = 'accepted'")
    assert len(rows) == 6
    for seed_text, label, labeler, intent in rows:
        assert seeds[seed_text] == label and labeler == "seed" and intent == "paraphrase"


def test_which_strategies_call_the_teacher():
    calls = {name: (s.calls_teacher(oracle=True), s.calls_teacher(oracle=False)) for name, s in STRATEGIES.items()}
    assert calls["seed-only"] == (False, False) and calls["static"] == calls["evokd"] == (True, True)
    assert calls["pool-random"] == calls["pool-errors"] == (False, True)  # without --oracle the teacher labels
    assert calls["pool-evokd"] == (True, True)


def test_seed_only_runs_no_rounds_and_needs_no_teacher(sst2_task, tmp_path):
    config = LoopConfig(rounds=4, strategy="seed-only")
    assert not needs_teacher(config)
    rounds = RoundRunner(load_task(sst2_task), tmp_path / "run", config, teacher_lm=None).run()
    assert [r["round"] for r in rounds] == [0]


@pytest.mark.parametrize("strategy", ["pool-random", "pool-uncertainty", "pool-errors"])
def test_pool_strategies_with_oracle_need_no_llm(sst2_task, pool_file, tmp_path, strategy):
    out = tmp_path / strategy
    config = LoopConfig(rounds=2, per_round=8, strategy=strategy, pool=str(pool_file), oracle=True, eval_guard=False)
    assert not needs_teacher(config)
    rounds = RoundRunner(load_task(sst2_task), out, config, teacher_lm=None).run()
    assert [r["n_accepted"] for r in rounds[1:]] == [8, 8]
    gold = {r["text"]: r["label"] for r in read_jsonl(pool_file)}
    rows = query(out, "SELECT text, label, labeler, source FROM samples WHERE round > 0 AND status = 'accepted'")
    assert all(gold[t] == lab and labeler == "oracle" and src == "pool" for t, lab, labeler, src in rows)
    # each pool text is taken at most once, and the store marks what was used
    assert len({t for t, *_ in rows}) == 16
    assert query(out, "SELECT count(*) FROM pool WHERE used_round IS NOT NULL")[0][0] >= 16
    assert query(out, "SELECT count(*) FROM calls") == [(0,)]


def test_pool_errors_on_a_pool_larger_than_its_sample(sst2_task, pool_file, tmp_path, monkeypatch):
    """Above POOL_ERRORS_SAMPLE free rows, the regions are found in a random sample of them."""
    monkeypatch.setattr(pool_sources, "POOL_ERRORS_SAMPLE", 60)
    seen = []
    real = pool_sources.PoolRankSource.errors_rank

    def spy(self, rnd):
        ranked = real(self, rnd)
        seen.append((len(ranked), len(set(ranked)), self.ctx.store.pool_size()))
        return ranked

    monkeypatch.setattr(pool_sources.PoolRankSource, "errors_rank", spy)
    out = tmp_path / "run"
    rounds = RoundRunner(load_task(sst2_task), out, LoopConfig(rounds=2, per_round=8, strategy="pool-errors",
                                                         pool=str(pool_file), oracle=True, eval_guard=False)).run()
    assert [r["n_accepted"] for r in rounds[1:]] == [8, 8]
    # every free row is still ranked (the sample's picks first, the rest after), each once
    assert seen[0] == (400, 400, 400) and seen[1] == (392, 392, 400)


def test_pool_uncertainty_takes_less_confident_texts_than_random(sst2_task, pool_file, tmp_path):
    scores = {}
    for strategy in ("pool-random", "pool-uncertainty"):
        out = tmp_path / strategy
        RoundRunner(load_task(sst2_task), out, LoopConfig(rounds=1, per_round=16, strategy=strategy, pool=str(pool_file),
                                                     oracle=True, eval_guard=False), teacher_lm=None).run()
        scores[strategy] = query(out, "SELECT avg(student_score) FROM samples WHERE round = 1 AND status = 'accepted'")[0][0]
    assert scores["pool-uncertainty"] < scores["pool-random"]


def test_pool_evokd_maps_teacher_texts_to_nearest_pool_texts(sst2_task, sst2_pool, pool_file, tmp_path):
    out = tmp_path / "run"
    teacher_pool = sst2_pool[400:]  # the double "generates" sentences that are not in the pool file
    rounds = run(sst2_task, out, teacher_pool, "pool-evokd", rounds=2, per_round=6, pool=str(pool_file), oracle=True)
    assert rounds[-1]["round"] == 2
    pool_texts = {r["text"] for r in read_jsonl(pool_file)}
    rows = query(out, "SELECT text, query, source FROM samples WHERE round > 0")
    assert rows and all(t in pool_texts and q and q not in pool_texts and src == "pool" for t, q, src in rows)
    steps = {s for (s,) in query(out, "SELECT DISTINCT step FROM calls")}
    assert steps == {"analyze", "generate"}  # the oracle labels: no labeling calls


def test_pool_without_oracle_is_labeled_by_the_teacher(sst2_task, sst2_pool, tmp_path):
    unlabeled = write_jsonl(tmp_path / "unlabeled.jsonl", [{"text": r["text"]} for r in sst2_pool[:200]])
    out = tmp_path / "run"
    run(sst2_task, out, sst2_pool, "pool-random", rounds=1, per_round=5, pool=str(unlabeled))
    rows = query(out, "SELECT labeler, label FROM samples WHERE round = 1 AND status = 'accepted'")
    assert len(rows) == 5 and all(labeler == "teacher" and label for labeler, label in rows)


def test_pool_resume_does_not_retake_used_texts(sst2_task, pool_file, tmp_path):
    out = tmp_path / "run"
    task = load_task(sst2_task)
    RoundRunner(task, out, LoopConfig(rounds=1, per_round=8, strategy="pool-random", pool=str(pool_file), oracle=True)).run()
    RoundRunner(task, out, LoopConfig(rounds=3, per_round=8, strategy="pool-random", pool=str(pool_file), oracle=True)).run()
    texts = [t for (t,) in query(out, "SELECT text FROM samples WHERE source = 'pool'")]
    assert len(texts) == 24 and len(set(texts)) == 24
    assert query(out, "SELECT count(*) FROM pool") == [(400,)]  # loaded once


def test_cli_pool_errors_and_bad_pool_file(sst2_task, pool_file, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    ok = runner.invoke(main, ["generate", str(sst2_task), "--strategy", "pool-errors", "--pool", str(pool_file),
                              "--oracle", "--rounds", "1", "--per-round", "4", "--out", str(out), "--quiet",
                              "--no-eval-guard"])  # counts what the round adds (the guard: test_eval_guard.py)
    assert ok.exit_code == 0, ok.output
    assert query(out, "SELECT count(*) FROM samples WHERE source = 'pool' AND status = 'accepted'") == [(4,)]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "fine movie", "label": "positive"}, {"text": "meh", "label": "neutral"}])
    res = runner.invoke(main, ["generate", str(sst2_task), "--strategy", "pool-random", "--pool", str(bad), "--oracle",
                               "--rounds", "1", "--out", str(tmp_path / "bad"), "--quiet"])
    assert res.exit_code == 2
    line = res.output.strip().splitlines()[-1]
    assert "bad.jsonl" in line and "label" in line and "neutral" in line and "Traceback" not in res.output
    res = runner.invoke(main, ["generate", str(sst2_task), "--strategy", "pool-random", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "needs --pool" in res.output
    res = runner.invoke(main, ["generate", str(sst2_task), "--strategy", "nope", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown strategy 'nope'" in res.output



def test_pool_labels_are_calibrated_against_a_teacher_that_favours_one_label(sst2_task, sst2_pool, tmp_path, capsys):
    """The scripted TEST DOUBLE favours "positive" whatever it reads (`favoured`), as the embedded teacher
    favours TREC's DESC, and lists every label's probability. Raw, it labels every pool text positive; with
    batch calibration (the default) its probabilities are divided by their mean over 50 random pool texts,
    and the labels follow the texts again. The prior is recorded in the run and said in the summary; a
    resumed run reads it back instead of asking the teacher again; the dry-run plan counts the calls."""
    from evokd.estimate import planned_calls
    from evokd.progress import print_summary
    from evokd.teacher.calibration import CALIBRATION_TEXTS

    task = load_task(sst2_task)
    unlabeled = write_jsonl(tmp_path / "unlabeled.jsonl", [{"text": r["text"]} for r in sst2_pool[:300]])
    gold = {r["text"]: r["label"] for r in sst2_pool}

    def labels(out, calibrate, rounds):
        lm = scripted_lm(sst2_pool, task.label_names, seed=1, favoured="positive")
        config = LoopConfig(rounds=rounds, per_round=16, strategy="pool-random", pool=str(unlabeled), eval_guard=False,
                            calibrate_labels=calibrate, student="tfidf", seed=2)
        done = RoundRunner(task, out, config, teacher_lm=lm, teacher_name="scripted")
        done.rounds = done.run()
        return done, config, query(out, "SELECT text, label FROM samples WHERE round > 0 AND status = 'accepted'")

    _, _, raw = labels(tmp_path / "raw", False, 1)
    assert len(raw) == 16 and {label for _, label in raw} == {"positive"}
    assert any(gold[t] == "negative" for t, _ in raw)  # the favoured label took texts of the other one
    run_, config, calibrated = labels(tmp_path / "calibrated", True, 1)
    assert len(calibrated) == 16 and all(gold[t] == label for t, label in calibrated)
    record = run_.data["label calibration"]
    assert record["texts"] == CALIBRATION_TEXTS and record["prior"]["positive"] > 0.7 > record["prior"]["negative"]
    assert sum(record["prior"].values()) == pytest.approx(1.0)
    # round 1 asked the teacher about the 50 calibration texts, then about the 16 texts it took
    first = query(tmp_path / "calibrated", "SELECT count(*) FROM calls WHERE round = 1 AND step = 'label' AND attempt = 1")
    assert first == [(CALIBRATION_TEXTS + 16,)]
    assert planned_calls(task, config)[0] == {"label": CALIBRATION_TEXTS + 16}
    print_summary(run_.rounds, tmp_path / "calibrated", run_.data)
    said = capsys.readouterr().out
    assert "label calibration" in said and "divided by their mean over 50 random pool texts" in said
    # `evokd compare` rebuilds the run's teacher from the run's stored config: it labels with the same prior
    from evokd.compare import teacher_labels
    from evokd.run_dir import open_run

    with open_run(tmp_path / "calibrated") as store:
        stored = store.run_info()["config"]
    negatives = [t for t, _ in raw if gold[t] == "negative"]
    favoured = scripted_lm(sst2_pool, task.label_names, seed=1, favoured="positive")
    assert teacher_labels(task, task.seed_rows(), stored, favoured, negatives) == ["negative"] * len(negatives)
    assert set(teacher_labels(task, task.seed_rows(), {**stored, "data": {}}, favoured, negatives)) == {"positive"}
    # resumed for a second round: the recorded prior is read back, no calibration calls again
    _, _, resumed = labels(tmp_path / "calibrated", True, 2)
    assert query(tmp_path / "calibrated", "SELECT count(*) FROM calls WHERE round = 2 AND step = 'label' AND attempt = 1") == [(16,)]
    assert len(resumed) == 32 and all(gold[t] == label for t, label in resumed)
    # with the oracle nothing is calibrated and no calibration call is planned
    assert planned_calls(task, LoopConfig(rounds=1, per_round=16, strategy="pool-random", pool=str(unlabeled),
                                          oracle=True)) == [{}]


def test_a_teacher_without_label_probabilities_is_not_calibrated(sst2_task, sst2_pool, tmp_path):
    """The plain scripted TEST DOUBLE gives only its answer's probability (as most hosted teachers do): the
    run asks about the calibration texts once, says it could not calibrate, and takes the labels as given."""
    unlabeled = write_jsonl(tmp_path / "unlabeled.jsonl", [{"text": r["text"]} for r in sst2_pool[:30]])
    out = tmp_path / "run"
    task = load_task(sst2_task)
    runner = RoundRunner(task, out, LoopConfig(rounds=2, per_round=5, strategy="pool-random", pool=str(unlabeled),
                                               eval_guard=False, student="tfidf"),
                         teacher_lm=scripted_lm(sst2_pool, task.label_names, seed=1), teacher_name="scripted")
    runner.run()
    record = runner.data["label calibration"]
    assert record["prior"] is None and record["texts"] == 0
    assert record["description"].startswith("not calibrated: the teacher gave every label's probability for 0 of 30")
    by_round = query(out, "SELECT round, count(*) FROM calls WHERE step = 'label' AND attempt = 1 GROUP BY round ORDER BY round")
    assert by_round == [(1, 30 + 5), (2, 5)]  # the whole (small) pool asked once, not again in round 2
    gold = {r["text"]: r["label"] for r in sst2_pool}
    rows = query(out, "SELECT text, label FROM samples WHERE round > 0 AND status = 'accepted'")
    assert len(rows) == 10 and all(gold[t] == label for t, label in rows)  # the double's labels are gold


def test_dry_run_says_the_calibration_calls_of_a_pool_run(sst2_task, sst2_pool, tmp_path):
    unlabeled = write_jsonl(tmp_path / "unlabeled.jsonl", [{"text": r["text"]} for r in sst2_pool[:120]])
    args = ["generate", str(sst2_task), "--strategy", "pool-errors", "--pool", str(unlabeled), "--rounds", "2",
            "--per-round", "4", "--dry-run", "--out", str(tmp_path / "run")]
    calibrated = CliRunner().invoke(main, args)
    assert calibrated.exit_code == 0, calibrated.output
    assert "calls by round: 54, 4" in calibrated.output and "calls: 58 expected" in calibrated.output
    assert "round 1 also labels up to 50 random pool texts to calibrate the teacher's labels" in calibrated.output
    raw = CliRunner().invoke(main, args + ["--no-calibrate-labels"])
    assert raw.exit_code == 0, raw.output
    assert "calls: 8 expected" in raw.output and "calibrate" not in raw.output and "calls by round" not in raw.output
    assert not (tmp_path / "run").exists()
