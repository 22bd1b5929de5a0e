"""The EvoKD loop with the scripted TEST DOUBLE teacher, real MiniLM embeddings, real DuckDB,
real TF-IDF student. Checks the paper's order (strategy evokd-paper), the store contents,
interrupt + resume. The other strategies are tested in tests/test_strategies.py."""

import json

import duckdb
import pytest

from evokd.loop import LoopConfig, RoundRunner
from evokd.task import load_task
from evokd.teacher.scripted import scripted_lm


def run(task_path, out, pool, rounds=2, per_round=8, progress=None, **cfg):
    task = load_task(task_path)
    lm = scripted_lm(pool, task.label_names, seed=1, **cfg.pop("engine", {}))
    cfg.setdefault("strategy", "evokd-paper")
    cfg.setdefault("student", "tfidf")  # the module's subject is the loop; mpnet is the default elsewhere
    # The eval guard is off unless a test turns it on: on 200 eval rows it may roll back a round that happens
    # to lower tfidf's score, and these tests count what rounds add (the guard: tests/test_eval_guard.py).
    cfg.setdefault("eval_guard", False)
    loop = RoundRunner(task, out, LoopConfig(rounds=rounds, per_round=per_round, **cfg), teacher_lm=lm,
                 teacher_name="scripted", progress=progress or (lambda *a, **k: None))
    return loop.run(), lm


def accepted(out):
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    rows = con.execute("SELECT round, text, label FROM samples WHERE status='accepted' ORDER BY id").fetchall()
    con.close()
    return rows


def test_two_rounds_fill_store_and_files(sst2_task, sst2_pool, tmp_path):
    out = tmp_path / "run"
    rounds, lm = run(sst2_task, out, sst2_pool, rounds=2, per_round=8)
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert all(r["eval_accuracy"] is not None and r["eval_n"] == 200 for r in rounds)
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    tables = {t[0] for t in con.execute("SHOW TABLES").fetchall()}
    assert {"runs", "samples", "rounds", "calls", "schema_version"} <= tables
    per_round = dict(con.execute("SELECT round, count(*) FROM samples GROUP BY round").fetchall())
    assert per_round[0] == 6 and per_round[1] == 8 and per_round[2] >= 7
    intents = dict(con.execute("SELECT intent, count(*) FROM samples WHERE round=1 GROUP BY intent").fetchall())
    assert intents == {"hard": 4, "easy": 4}
    steps = dict(con.execute("SELECT step, count(*) FROM calls WHERE round=1 GROUP BY step").fetchall())
    assert steps["analyze"] == 1 and steps["generate"] == 1 and steps["label"] == per_round[1]
    assert con.execute("SELECT count(*) FROM calls WHERE prompt_tokens = 0").fetchall()[0][0] == 0
    # the student's prediction on each accepted generated text was recorded before it trained on it
    nulls = con.execute("SELECT count(*) FROM samples WHERE status='accepted' AND round>0 AND student_pred IS NULL").fetchall()
    assert nulls[0][0] == 0
    assert con.execute("SELECT count(*) FROM samples WHERE embedding IS NULL AND status='accepted'").fetchall()[0][0] == 0
    con.close()
    rows = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    assert len(rows) == sum(r["n_accepted"] for r in rounds)
    assert {"text", "label", "source", "round", "intent", "student_pred"} <= set(rows[0])
    assert {r["source"] for r in rows} == {"seed", "generated"}
    gold = {r["text"]: r["label"] for r in sst2_pool}
    assert all(r["label"] == gold[r["text"]] for r in rows if r["source"] == "generated")
    lines = (out / "rounds.jsonl").read_text().splitlines()
    assert [json.loads(x)["round"] for x in lines] == [0, 1, 2]


def test_generated_data_improves_the_student(sst2_task, sst2_pool, tmp_path):
    # tfidf, which starts near chance on 6 seeds, shows the loop's data reaching the student. The default
    # minilm (0.68 from the seeds and label anchors) did not move on these 72 gold-labeled texts
    # (0.68 -> 0.68 on 200 dev rows): whether generated data beats the seeds is issue 28's question.
    rounds, _ = run(sst2_task, tmp_path / "run", sst2_pool, rounds=3, per_round=24)
    assert rounds[-1]["eval_accuracy"] > rounds[0]["eval_accuracy"]
    assert rounds[-1]["train_size"] > 60


def test_duplicates_are_rejected_with_reasons(sst2_task, sst2_pool, tmp_path):
    # A pool of 12 texts forces the teacher to repeat itself: repeats must be rejected, never stored twice.
    rounds, _ = run(sst2_task, tmp_path / "run", sst2_pool[:12], rounds=3, per_round=8)
    reasons = {}
    for r in rounds:
        for k, v in r["rejected_by_reason"].items():
            reasons[k] = reasons.get(k, 0) + v
    assert reasons.get("exact_duplicate", 0) > 0
    texts = [t for _, t, _ in accepted(tmp_path / "run")]
    assert len(texts) == len(set(texts))


def test_teacher_failures_are_retried_and_recorded(sst2_task, sst2_pool, tmp_path):
    rounds, _ = run(sst2_task, tmp_path / "run", sst2_pool, rounds=1, per_round=6, engine={"fail_every": 3})
    con = duckdb.connect(str(tmp_path / "run" / "evokd.duckdb"), read_only=True)
    failed = con.execute("SELECT step, attempt, error FROM calls WHERE NOT ok").fetchall()
    retried = con.execute("SELECT count(*) FROM calls WHERE attempt > 1 AND ok").fetchall()[0][0]
    con.close()
    assert failed and all("AdapterParseError" in e or "JSON" in e for _, _, e in failed)
    assert retried >= 1
    assert rounds[1]["n_failed_calls"] == len(failed)
    assert rounds[1]["n_accepted"] >= 5


def test_ablation_switches(sst2_task, sst2_pool, tmp_path):
    out = tmp_path / "run"
    run(sst2_task, out, sst2_pool, rounds=1, per_round=6, use_easy=False, separate_labeling=False)
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    assert con.execute("SELECT DISTINCT intent FROM samples WHERE round=1").fetchall() == [("hard",)]
    steps = {s for (s,) in con.execute("SELECT DISTINCT step FROM calls").fetchall()}
    con.close()
    assert "label" not in steps and "generate_labeled" in steps


class Interrupt(BaseException):
    pass


def test_interrupt_mid_round_then_resume_matches_uninterrupted(sst2_task, sst2_pool, tmp_path):
    reference, _ = run(sst2_task, tmp_path / "ref", sst2_pool, rounds=3, per_round=8)

    def kill_in_round_2(event, **info):
        if event == "step" and info.get("round") == 2 and info["name"].startswith("labeling 3/"):
            raise Interrupt()

    out = tmp_path / "run"
    with pytest.raises(Interrupt):
        run(sst2_task, out, sst2_pool, rounds=3, per_round=8, progress=kill_in_round_2)
    assert max(r for r, _, _ in accepted(out)) == 1  # round 2 left no trace
    assert [json.loads(x)["round"] for x in (out / "rounds.jsonl").read_text().splitlines()] == [0, 1]
    resumed, _ = run(sst2_task, out, sst2_pool, rounds=3, per_round=8)
    assert [r["round"] for r in resumed] == [0, 1, 2, 3]
    assert accepted(out) == accepted(tmp_path / "ref")
    assert [r["eval_accuracy"] for r in resumed] == [r["eval_accuracy"] for r in reference]


def test_resume_with_more_rounds_and_wrong_task(sst2_task, sst2_pool, tmp_path):
    out = tmp_path / "run"
    run(sst2_task, out, sst2_pool, rounds=1)
    rounds, _ = run(sst2_task, out, sst2_pool, rounds=2)
    assert [r["round"] for r in rounds] == [0, 1, 2]
    other = sst2_task.parent / "other.yaml"
    other.write_text(sst2_task.read_text().replace("name: sst2-small", "name: other"))
    from evokd.errors import RunError

    with pytest.raises(RunError, match="holds a run of task 'sst2-small'"):
        run(other, out, sst2_pool, rounds=3)


def test_label_votes_reject_disagreements(sst2_task, sst2_pool, tmp_path):
    rounds, _ = run(sst2_task, tmp_path / "run", sst2_pool, rounds=1, per_round=16, label_votes=2,
                    engine={"label_noise": 0.4})
    assert rounds[1]["rejected_by_reason"].get("label_disagrees", 0) > 0
    con = duckdb.connect(str(tmp_path / "run" / "evokd.duckdb"), read_only=True)
    n_label_calls = con.execute("SELECT count(*) FROM calls WHERE step='label'").fetchall()[0][0]
    con.close()
    assert n_label_calls > 16  # a second vote was asked for every text whose first vote came back


def test_teacher_confidence_is_stored_exported_and_filters(sst2_task, sst2_pool, tmp_path):
    """The teacher's probability of each label reaches the store and dataset.jsonl; --min-confidence rejects
    the labels it was unsure of. The scripted TEST DOUBLE gives its noisy labels a lower probability."""
    from evokd.teacher.scripted import ScriptedEngine

    out = tmp_path / "run"
    rounds, _ = run(sst2_task, out, sst2_pool, rounds=1, per_round=16, min_confidence=0.9, engine={"label_noise": 0.4})
    assert rounds[1]["rejected_by_reason"].get("low_confidence", 0) > 0
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    by_status = dict(con.execute("SELECT status, list(teacher_confidence) FROM samples WHERE round = 1 "
                                 "AND labeler = 'teacher' GROUP BY status").fetchall())
    con.close()
    gold, noise = ScriptedEngine.GOLD_PROBABILITY, ScriptedEngine.NOISE_PROBABILITY
    assert by_status["accepted"] and all(c == pytest.approx(gold) for c in by_status["accepted"])
    assert any(c == pytest.approx(noise) for c in by_status["rejected"])
    rows = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    assert all(r["teacher_confidence"] == pytest.approx(gold) for r in rows if r["round"] == 1)
    assert {r["teacher_confidence"] for r in rows if r["round"] == 0} == {None}  # seeds: no teacher label


def test_first_label_vote_is_greedy_and_later_votes_sample(sst2_task, sst2_pool):
    """The first labeling call runs at label_temperature (0: greedy); votes and retries sample at the
    LM's temperature. The scripted TEST DOUBLE records the temperature each request carried."""
    from evokd.task import load_task
    from evokd.teacher.teacher import Teacher

    task = load_task(sst2_task)
    lm = scripted_lm(sst2_pool, task.label_names, seed=1)
    seen: list = []
    engine = lm.engine
    inner = engine.complete

    def recording(request):
        seen.append(request.config.temperature)
        return inner(request)

    engine.complete = recording
    text = sst2_pool[0]["text"]
    label, reason = Teacher(task, lm).label_with_votes(1, text, votes=2)
    assert seen == [0.0, 0.8] and (label or reason)
    seen.clear()
    Teacher(task, lm, label_temperature=None).label_with_votes(1, text, votes=2)
    assert seen == [0.8, 0.8]
    seen.clear()
    engine.fail_every, engine.n_calls = 1, 0  # every answer unparseable: three attempts, only the first greedy
    assert Teacher(task, lm).label_vote(1, text) is None
    assert seen == [0.0, 0.8, 0.8]


def test_a_round_reads_the_run_state_once(sst2_task, sst2_pool, tmp_path, monkeypatch):
    """The runner keeps the run's state in memory between commits: one read of the accepted rows,
    rounds, hashes and vectors per round (evokd.loop.state.RunState), one commit, one rewrite of the
    run folder's files, instead of the store being asked again at every step."""
    from collections import Counter

    from evokd.store import Store

    calls = Counter()
    for name in ("samples", "rounds", "accepted_hashes", "accepted_vectors", "commit_round"):
        real = getattr(Store, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(Store, name, counted)
    run(sst2_task, tmp_path / "one", sst2_pool, rounds=1, strategy="evokd")
    one = dict(calls)
    calls.clear()
    run(sst2_task, tmp_path / "three", sst2_pool, rounds=3, strategy="evokd")
    per_round = {name: (calls[name] - one[name]) / 2 for name in one}
    # each round: RunState.read (samples, rounds, hashes, vectors), commit, dataset.jsonl + rounds.jsonl
    assert per_round == {"samples": 2, "rounds": 2, "accepted_hashes": 1, "accepted_vectors": 1, "commit_round": 1}


def test_the_student_trains_with_the_teachers_confidence_as_weights(sst2_task, sst2_pool, tmp_path, monkeypatch):
    """--noise confidence: every student fit weighs a teacher label by the teacher's confidence
    beyond chance and a seed by 1; --noise none trains unweighted. The scripted TEST DOUBLE labels with
    probability 0.95 (gold) or 0.55 (noise). The real fit runs; only its arguments are recorded."""
    import evokd.students
    from evokd.noise import confidence_weights

    fits = []
    real = evokd.students.fit_student

    def recording(student, texts, targets, task, sample_weight=None):
        fits.append((list(texts), None if sample_weight is None else list(sample_weight)))
        return real(student, texts, targets, task, sample_weight=sample_weight)

    monkeypatch.setattr(evokd.students, "fit_student", recording)
    run(sst2_task, tmp_path / "run", sst2_pool, rounds=1, per_round=8, engine={"label_noise": 0.4}, noise="confidence")
    rows = [json.loads(line) for line in (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()]
    confidence = {r["text"]: r["teacher_confidence"] for r in rows}
    texts, weights = fits[-1]  # the fit that made round 1's student: seeds and round 1's accepted texts
    assert set(texts) == set(confidence) and weights is not None
    expected = confidence_weights([confidence[t] for t in texts], 2)
    assert weights == pytest.approx(list(expected))
    assert {w for t, w in zip(texts, weights) if confidence[t] is None} == {1.0}  # seeds
    assert any(w < 1.0 for w in weights)
    from evokd.store import Store

    with Store.open_read_only(tmp_path / "run" / "evokd.duckdb") as store:
        assert store.run_info()["config"]["noise"] == "confidence"

    fits.clear()
    run(sst2_task, tmp_path / "plain", sst2_pool, rounds=1, per_round=8, noise="none")
    assert fits and all(weights is None for _, weights in fits)


def test_pool_texts_are_not_judged_by_the_filters_for_invented_texts(sst2_task, sst2_pool, tmp_path, monkeypatch):
    """A user's pool texts are real data: a 3,000-character one, a two-character one and one that reads
    like a prompt leak ("label: ...") are labeled and kept, not rejected as too_long / too_short /
    prompt_leak. The teacher's labeling prompt gets the long one cut to TEACHER_TEXT_CHARS; the stored
    sample keeps it whole (the student's encoder reads what it can)."""
    from evokd.io import cut_text
    from evokd.loop.candidates import TEACHER_TEXT_CHARS
    from evokd.teacher.teacher import Teacher

    long = " ".join(r["text"] for r in sst2_pool[100:200])[:3000]
    odd = [long, "ok", "record label: sony. a warm, funny album"]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in odd + [r["text"] for r in sst2_pool[:10]]))
    asked = []
    real = Teacher.label_many
    monkeypatch.setattr(Teacher, "label_many", lambda self, round_, texts, *a, **k: asked.extend(texts) or real(
        self, round_, texts, *a, **k))
    out = tmp_path / "run"
    task = load_task(sst2_task)
    rounds = RoundRunner(task, out, LoopConfig(rounds=1, per_round=13, strategy="pool-random", pool=str(pool),
                                               student="tfidf", eval_guard=False),
                         teacher_lm=scripted_lm(sst2_pool, task.label_names, seed=1), teacher_name="scripted").run()
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    status = dict(con.execute("SELECT text, status FROM samples WHERE round = 1").fetchall())
    con.close()
    assert rounds[1]["rejected_by_reason"] == {} and all(status[t] == "accepted" for t in odd)
    assert len(asked) == 13 and max(map(len, asked)) <= TEACHER_TEXT_CHARS < len(long)
    assert cut_text(long, TEACHER_TEXT_CHARS) in asked


def test_each_round_records_and_says_how_many_teacher_labels_its_student_doubted(sst2_task, sst2_pool, tmp_path,
                                                                                 capsys):
    """--noise agree: the anchored student (real frozen MiniLM on the seeds and the label descriptions)
    contradicts some of the labels of the scripted TEST DOUBLE, which flips 40% of them. Each round's
    record says what its student's training did, rounds.jsonl carries it, and the summary has a
    "doubted" column; with --noise confidence nothing is doubted and the column is left out."""
    from evokd.progress import print_summary

    rounds, _ = run(sst2_task, tmp_path / "run", sst2_pool, rounds=1, per_round=16, noise="agree",
                    engine={"label_noise": 0.4})
    seeds_only, first = rounds[0]["training"], rounds[1]["training"]
    assert seeds_only == {"mode": "agree", "teacher_rows": 0}  # the seeds are trusted: nothing to doubt
    teacher_rows = sum(1 for r in accepted(tmp_path / "run") if r[0] == 1)
    assert first["mode"] == "agree" and first["teacher_rows"] == teacher_rows > 0
    assert 0 < first["disagreed"] <= teacher_rows
    written = [json.loads(line) for line in (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()]
    assert written[1]["training"] == first
    print_summary(rounds, tmp_path / "run")
    table = capsys.readouterr().out
    assert "doubted" in table and f"{first['disagreed']} of {teacher_rows}" in table

    rounds, _ = run(sst2_task, tmp_path / "weighed", sst2_pool, rounds=1, per_round=16, engine={"label_noise": 0.4},
                    noise="confidence")
    assert rounds[1]["training"]["mode"] == "confidence" and "disagreed" not in rounds[1]["training"]
    print_summary(rounds, tmp_path / "weighed")
    assert "doubted" not in capsys.readouterr().out


def test_distilling_a_run_trains_its_student_as_the_run_did(sst2_task, sst2_pool, tmp_path):
    """`evokd distill RUN` without --student ships the run's own student (here tfidf, not the default
    minilm) and without --noise weighs the teacher's labels as the run did (here --noise agree), and
    says so in metrics.json; --student and --noise still override them. Scripted TEST DOUBLE teacher,
    real loop, DuckDB, tfidf and MiniLM, ONNX export."""
    from click.testing import CliRunner

    from evokd.cli import main

    run(sst2_task, tmp_path / "run", sst2_pool, rounds=1, per_round=8, noise="agree", engine={"label_noise": 0.4})
    for extra, student, mode in (([], "tfidf", "agree"), (["--noise", "none"], "tfidf", "none"),
                                 (["--student", "minilm"], "minilm", "agree")):
        out = tmp_path / f"student-{student}-{mode}"
        result = CliRunner().invoke(main, ["distill", str(tmp_path / "run"), "--out", str(out), "--quiet", *extra])
        assert result.exit_code == 0, result.output
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["student"] == student and metrics["train"]["noise"]["mode"] == mode


def test_unconfirmed_labels_counts_texts_written_for_a_label_and_labeled_otherwise():
    """Logic test (plain dict rows): 5+ texts written for a label, fewer than half labeled with it."""
    from evokd.loop.candidates import unconfirmed_labels

    rows = ([{"intended_label": "Sci/Tech", "teacher_label": "Business"}] * 5
            + [{"intended_label": "Sci/Tech", "teacher_label": "Sci/Tech"}] * 2
            + [{"intended_label": "World", "teacher_label": "World"}] * 3 + [{"intended_label": "World", "teacher_label": "Sports"}] * 3
            + [{"intended_label": "Sports", "teacher_label": "World"}] * 4  # 4 texts: too few to tell
            + [{"intended_label": None, "teacher_label": "Sports"}, {"intended_label": "Business", "teacher_label": None}] * 6)
    assert unconfirmed_labels(rows) == [("Sci/Tech", 2, 7)]  # World: 3 of 6 is half, not fewer


def test_a_run_says_which_label_its_teacher_never_gives_the_texts_it_wrote_for_it(sst2_task, sst2_pool, tmp_path,
                                                                                   capsys):
    """The scripted TEST DOUBLE writes positive texts when asked but never labels a text positive (as the
    embedded teacher all but never says ag_news's Sci/Tech): the agreement filter rejects those texts,
    and the run's summary names the label, with no gold labels needed."""
    from evokd.progress import print_summary

    task = load_task(sst2_task)
    loop = RoundRunner(task, tmp_path / "run", LoopConfig(rounds=1, per_round=16, strategy="evokd", student="tfidf"),
                       teacher_lm=scripted_lm(sst2_pool, task.label_names, seed=1, blind_to="positive"),
                       teacher_name="scripted")
    rounds = loop.run()
    con = duckdb.connect(str(tmp_path / "run" / "evokd.duckdb"), read_only=True)
    written = con.execute("SELECT count(*), count(*) FILTER (WHERE teacher_label = 'positive') FROM samples "
                          "WHERE intended_label = 'positive' AND teacher_label IS NOT NULL").fetchall()[0]
    con.close()
    assert written[0] >= 5 and written[1] == 0
    assert rounds[1]["rejected_by_reason"].get("label_not_intended") == written[0]
    assert loop.unconfirmed == [("positive", 0, written[0])]
    print_summary(rounds, tmp_path / "run", loop.data, loop.unconfirmed)
    out = " ".join(capsys.readouterr().out.split())
    assert f"the teacher labeled 0 of the {written[0]} texts it wrote for positive as positive" in out
