"""NER through the whole loop and CLI: scripted TEST DOUBLE teacher (answers from real WNUT-17
sentences, tests/data), real spaCy tokenizer, real BiLSTM tagger, real DuckDB and onnxruntime."""

import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from evokd.cli import main
from evokd.loop import LoopConfig, RoundRunner
from evokd.ner import tokens_to_example
from evokd.task import load_task
from evokd.teacher.scripted import scripted_lm

from conftest import NER_TYPES, data_rows, ner_examples, write_ner_task

TYPES = NER_TYPES


@pytest.fixture
def ner_task(tmp_path) -> Path:
    return write_ner_task(tmp_path, ner_examples("dev", 120, min_tokens=6))


@pytest.fixture(scope="module")
def ner_pool():
    from evokd.filters import clean_generated

    # Sentences the generation cleaner leaves as they are (it strips wrapping quotes and bullets),
    # so the scripted teacher's gold labels can be looked up by the stored text.
    return [r for r in ner_examples("train", 450, skip=100, min_tokens=6) if clean_generated(r["text"]) == r["text"]]


def test_ner_loop_stores_exact_spans_and_entity_f1(ner_task, ner_pool, tmp_path):
    task = load_task(ner_task)
    lm = scripted_lm(ner_pool, TYPES, seed=2, extra_mention="Atlantis")
    out = tmp_path / "run"
    rounds = RoundRunner(task, out, LoopConfig(rounds=2, per_round=8), teacher_lm=lm, teacher_name="scripted").run()
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert all(r["eval_entity_f1"] is not None and r["eval_accuracy"] is None for r in rounds)
    rows = [json.loads(x) for x in (out / "dataset.jsonl").read_text().splitlines()]
    generated = [r for r in rows if r["source"] == "generated"]
    assert len(generated) >= 12
    gold = {r["text"]: r["entities"] for r in ner_pool}
    for r in generated:
        assert r["entities"] == gold[r["text"]]  # mentions placed back at exactly the original offsets
        for e in r["entities"]:
            assert 0 <= e["start"] < e["end"] <= len(r["text"])
        assert r["student_entities"] is not None
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    notes = con.execute("SELECT label_notes FROM samples WHERE round = 1 AND status = 'accepted'").fetchall()
    con.close()
    # the hallucinated mention was rejected with its reason, not placed
    assert all(["Atlantis", "person", "mention_not_in_text"] in json.loads(n) for (n,) in notes)


def test_ner_cli_generate_distill_predict(ner_task, ner_pool, tmp_path):
    from evokd.teacher import lm as lm_module

    lm_module.register_teacher("scripted-ner", lambda teacher, **kw: scripted_lm(ner_pool, TYPES, seed=3))
    try:
        runner = CliRunner()
        out, student = tmp_path / "run", tmp_path / "student"
        result = runner.invoke(main, ["generate", str(ner_task), "--teacher", "scripted-ner", "--rounds", "1",
                                      "--per-round", "8", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "entity F1" in result.output
        result = runner.invoke(main, ["distill", str(out), "--task", str(ner_task), "--out", str(student)])
        assert result.exit_code == 0, result.output
        metrics = json.loads((student / "metrics.json").read_text())
        assert metrics["student"] == "tagger" and 0 <= metrics["eval"]["f1"] <= 1
        assert "entity level" in (student / "MODEL_CARD.md").read_text()
        text = "Angela Merkel met Tim Cook in Paris ."
        result = runner.invoke(main, ["predict", str(student), text])
        assert result.exit_code == 0, result.output
        out_row = json.loads(result.output)
        for e in out_row["entities"]:
            assert text[e["start"]:e["end"]] == e["text"] and e["label"] in TYPES
        result = runner.invoke(main, ["eval", str(student), "--data", str(ner_task.parent / "eval.jsonl")])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["f1"] == pytest.approx(metrics["eval"]["f1"])

        spacy_student = tmp_path / "spacy-student"
        result = runner.invoke(main, ["distill", str(out), "--task", str(ner_task), "--student", "spacy-ner",
                                      "--out", str(spacy_student)])
        assert result.exit_code == 0, result.output
        assert list(spacy_student.glob("*.whl")) and (spacy_student / "pipeline").is_dir()
        card = (spacy_student / "MODEL_CARD.md").read_text()
        assert "spaCy runtime, not onnxruntime" in card
        result = runner.invoke(main, ["predict", str(spacy_student), text])
        assert result.exit_code == 0 and "entities" in json.loads(result.output)
        result = runner.invoke(main, ["eval", str(spacy_student), "--data", str(ner_task.parent / "eval.jsonl")])
        assert result.exit_code == 0 and 0 <= json.loads(result.output)["f1"] <= 1
    finally:
        lm_module._registry.pop("scripted-ner", None)


def test_ner_bad_seed_span_is_one_line_error(ner_task, tmp_path):
    (ner_task.parent / "seeds.jsonl").write_text(json.dumps({"text": "Paris is big", "entities": [
        {"start": 0, "end": 3, "label": "location"}]}) + "\n")
    result = CliRunner().invoke(main, ["generate", str(ner_task), "--out", str(tmp_path / "o"), "--teacher", "x/y"])
    assert result.exit_code == 2 and "seeds.jsonl" in result.stderr and "\n" not in result.stderr.strip()
    assert not (tmp_path / "o").exists()


def test_ner_pool_errors_takes_pool_texts_labeled_by_the_teacher(ner_task, ner_pool, tmp_path):
    """pool-errors needs only texts and the student's mistakes, so it runs on NER too; without
    --oracle the (scripted TEST DOUBLE) teacher labels what it takes."""
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in ner_pool[:200]))
    out = tmp_path / "run"
    config = LoopConfig(rounds=2, per_round=6, strategy="pool-errors", pool=str(pool))
    rounds = RoundRunner(load_task(ner_task), out, config, teacher_lm=scripted_lm(ner_pool, TYPES, seed=4),
                   teacher_name="scripted").run()
    assert [r["round"] for r in rounds] == [0, 1, 2]
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    rows = con.execute("SELECT text, labeler, source FROM samples WHERE round > 0 AND status = 'accepted'").fetchall()
    steps = {s for (s,) in con.execute("SELECT DISTINCT step FROM calls").fetchall()}
    con.close()
    pool_texts = {r["text"] for r in ner_pool[:200]}
    assert len(rows) >= 8 and len({t for t, *_ in rows}) == len(rows)
    assert all(t in pool_texts and labeler == "teacher" and src == "pool" for t, labeler, src in rows)
    assert steps == {"label"}  # no analysis or generation: the student's mistakes pick the texts


def test_ner_long_pool_text_becomes_its_cut_so_the_teachers_spans_cover_it(ner_task, ner_pool, tmp_path):
    """A pool sentence over TEACHER_TEXT_CHARS is not refused: the (scripted TEST DOUBLE) teacher labels
    its cut, and the stored sample is that cut, every span inside it."""
    from evokd.io import cut_text
    from evokd.loop.candidates import TEACHER_TEXT_CHARS

    long = " ".join(r["text"] for r in ner_pool[200:300])
    assert len(long) > TEACHER_TEXT_CHARS
    cut = cut_text(long, TEACHER_TEXT_CHARS)
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in [long] + [r["text"] for r in ner_pool[:5]]))
    answers = ner_pool + [{"text": cut, "entities": [{"start": 0, "end": len(cut.split()[0]), "label": TYPES[0]}]}]
    out = tmp_path / "run"
    rounds = RoundRunner(load_task(ner_task), out, LoopConfig(rounds=1, per_round=6, strategy="pool-errors", pool=str(pool)),
                         teacher_lm=scripted_lm(answers, TYPES, seed=4), teacher_name="scripted").run()
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    rows = con.execute("SELECT text, entities, status FROM samples WHERE round = 1").fetchall()
    con.close()
    assert rounds[1]["rejected_by_reason"] == {} and len(rows) == 6
    stored = [(text, json.loads(label)) for text, label, status in rows if len(text) > 1000]
    assert len(stored) == 1 and stored[0][0] == cut and stored[0][1][0]["end"] <= len(cut)


def oracle_pool(tmp_path: Path, keep, n: int = 150) -> tuple[Path, dict]:
    """A pool file of the first `n` WNUT-17 train rows of 6+ tokens that `keep(line_no, row)` accepts,
    in the pool's own tokens + tags, and each sentence's gold spans by its text."""
    raw = [r for i, r in enumerate(data_rows("wnut17", "train")) if len(r["tokens"]) >= 6 and keep(i, r)][:n]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in raw))
    return pool, {ex["text"]: ex["entities"] for ex in (tokens_to_example(r["tokens"], r["tags"]) for r in raw)}


def test_ner_pool_oracle_takes_the_pool_files_gold_spans(ner_task, tmp_path):
    """--oracle on NER: no LLM at all; each taken sentence keeps the pool file's own spans (CoNLL
    tokens + BIO tags here), recorded as labeler=oracle, and the store's entities are exactly those."""
    pool, gold = oracle_pool(tmp_path, lambda i, r: any(t != "O" for t in r["tags"]))
    out = tmp_path / "run"
    config = LoopConfig(rounds=2, per_round=5, strategy="pool-random", pool=str(pool), oracle=True)
    rounds = RoundRunner(load_task(ner_task), out, config, teacher_lm=None, teacher_name="").run()
    assert [r["round"] for r in rounds] == [0, 1, 2] and rounds[-1]["eval_entity_f1"] is not None
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    rows = con.execute("SELECT text, entities, labeler, source FROM samples WHERE round > 0 AND status = 'accepted'").fetchall()
    n_calls = con.execute("SELECT count(*) FROM calls").fetchone()[0]
    con.close()
    assert len(rows) == 10 and n_calls == 0
    for text, entities, labeler, source in rows:
        assert (labeler, source) == ("oracle", "pool")
        assert json.loads(entities) == gold[text]


def test_ner_pool_evokd_swaps_the_teachers_sentences_for_gold_pool_sentences(ner_task, ner_pool, tmp_path):
    """pool-evokd on NER: the (scripted TEST DOUBLE) teacher's hard/easy sentences are only queries;
    each is replaced by its nearest unused pool sentence, which keeps its gold spans under --oracle,
    so the teacher is asked to analyse and generate but never to label."""
    pool, gold = oracle_pool(tmp_path, lambda i, r: i >= 1000)
    out = tmp_path / "run"
    config = LoopConfig(rounds=2, per_round=6, strategy="pool-evokd", pool=str(pool), oracle=True)
    rounds = RoundRunner(load_task(ner_task), out, config, teacher_lm=scripted_lm(ner_pool, TYPES, seed=5),
                   teacher_name="scripted").run()
    assert [r["round"] for r in rounds] == [0, 1, 2] and rounds[-1]["eval_entity_f1"] is not None
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    rows = con.execute("SELECT text, entities, labeler, source, intent FROM samples "
                       "WHERE round > 0 AND status = 'accepted'").fetchall()
    steps = {s for (s,) in con.execute("SELECT DISTINCT step FROM calls").fetchall()}
    con.close()
    assert len(rows) >= 8 and len({r[0] for r in rows}) == len(rows)
    for text, entities, labeler, source, intent in rows:
        assert (labeler, source) == ("oracle", "pool") and intent in ("hard", "easy")
        assert json.loads(entities) == gold[text]
    assert steps == {"analyze", "generate"}


def test_ner_pool_oracle_names_the_bad_row(ner_task, tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps({"tokens": ["Paris", "is", "big"], "tags": ["B-location", "O", "O"]}) + "\n"
                    + json.dumps({"tokens": ["Bob", "ran"], "tags": ["B-CITY", "O"]}) + "\n")
    res = CliRunner().invoke(main, ["generate", str(ner_task), "--strategy", "pool-random", "--pool", str(pool),
                                    "--oracle", "--rounds", "1", "--out", str(tmp_path / "run")])
    assert res.exit_code != 0 and "Traceback" not in res.output
    line = res.output.strip().splitlines()[-1]
    assert str(pool) in line and "line 2" in line and "tags" in line and "CITY" in line


def test_ner_pool_uncertainty_takes_the_sentences_the_tagger_is_least_sure_of(ner_task, tmp_path):
    """pool-uncertainty on NER ranks by the tagger's least certain token: the sentences it takes are
    ones the round-0 tagger is less confident about than random pool sentences (real tagger, oracle spans)."""
    from evokd.students import make_student

    raw = data_rows("wnut17", "train")[200:400]
    raw = [r for r in raw if len(r["tokens"]) >= 3]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in raw))
    task = load_task(ner_task)
    taken = {}
    for strategy in ("pool-random", "pool-uncertainty"):
        out = tmp_path / strategy
        RoundRunner(task, out, LoopConfig(rounds=1, per_round=8, strategy=strategy, pool=str(pool), oracle=True),
              teacher_lm=None, teacher_name="").run()
        taken[strategy] = [json.loads(line)["text"] for line in (out / "dataset.jsonl").open() if '"pool"' in line]
    seeds = task.seed_rows()
    tagger = make_student("tagger").fit([r["text"] for r in seeds], [r["entities"] for r in seeds])
    conf = {k: tagger.confidence(v) for k, v in taken.items()}
    assert len(taken["pool-uncertainty"]) == 8 and all(0.0 < c <= 1.0 for c in conf["pool-uncertainty"])
    assert conf["pool-uncertainty"].mean() < conf["pool-random"].mean()


def test_ner_pool_uncertainty_with_a_student_without_confidence_is_refused_up_front(ner_task, tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps({"tokens": ["Paris", "is", "big"], "tags": ["B-location", "O", "O"]}) + "\n")
    res = CliRunner().invoke(main, ["generate", str(ner_task), "--strategy", "pool-uncertainty", "--pool", str(pool),
                                    "--oracle", "--student", "spacy-ner", "--rounds", "1", "--out", str(tmp_path / "run")])
    line = res.output.strip().splitlines()[-1]
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "'spacy-ner' student does not give" in line and "--student tagger" in line
    assert not (tmp_path / "run" / "evokd.duckdb").exists()  # refused before anything was trained or written
