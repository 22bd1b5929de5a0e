"""Real data as users have it (issue 24, item 6): training data with repeated texts, conflicting
labels and texts over MAX_TEXT_CHARS is read, not refused; repeats are merged (majority label, a
tie to the label seen first), long texts cut at a word boundary, and every change is reported on
stdout, in metrics.json and in MODEL_CARD.md. Eval data keeps its repeats; pools keep every row
and cut long texts. Seeds stay strict. Real components: the CLI, TF-IDF training, onnxruntime."""

import gzip
import json

import duckdb
import pytest
from click.testing import CliRunner

from evokd.cli import main
from evokd.errors import InputError
from evokd.io import MAX_TEXT_CHARS, ReadReport, cut_text, read_pool
from evokd.pool import iter_pool_chunks
from evokd.task import load_task

TASK = ("name: t\nkind: classification\ndescription: Sentiment.\nlabels:\n  negative: negative opinion\n"
        "  positive: positive opinion\nseeds: seeds.jsonl\n")
SEEDS = [{"text": "a wonderful, moving film", "label": "positive"},
         {"text": "a dull and lifeless mess", "label": "negative"}]
NER_TASK = ("name: n\nkind: ner\ndescription: People and places.\nlabels:\n  PER: a person\n  LOC: a place\n"
            "seeds: seeds.jsonl\n")

POS = ["great acting and a lovely score", "I loved every minute of it", "charming, funny and warm",
       "a triumph of a movie", "beautifully shot and well told", "the best film this year"]
NEG = ["boring from start to finish", "a waste of two hours", "clumsy writing and flat jokes",
       "I walked out halfway", "painfully slow and dull", "the worst film this year"]


def _long_text(n: int) -> str:
    """A text of exactly n characters, words of 9 letters and a space, so the cut has a word boundary."""
    words = ("wonderful " * (n // 10 + 1))[:n]
    return words[:-1] + "x" if words.endswith(" ") else words


def _write_jsonl(path, rows, gz=False):
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _task(tmp_path, text=TASK, seeds=SEEDS):
    (tmp_path / "task.yaml").write_text(text, encoding="utf-8")
    _write_jsonl(tmp_path / "seeds.jsonl", seeds)
    return tmp_path / "task.yaml"


def _messy_rows():
    """12 clean rows, then (lines 13-19): an exact repeat of line 1, a text labeled positive once and
    negative twice (majority: negative), a text labeled positive then negative (tie: positive, the
    first seen), and a 25,000-character positive text."""
    rows = [{"text": t, "label": "positive"} for t in POS] + [{"text": t, "label": "negative"} for t in NEG]
    rows += [{"text": POS[0], "label": "positive"},  # line 13: exact repeat of line 1
             {"text": "not sure what I watched", "label": "positive"},  # line 14
             {"text": "not sure what I watched", "label": "negative"},
             {"text": "not sure what I watched", "label": "negative"},
             {"text": "an odd one, half good", "label": "positive"},  # line 17
             {"text": "an odd one, half good", "label": "negative"},
             {"text": _long_text(25_000), "label": "positive"}]  # line 19
    return rows


def _check_messy_student(out, data_name):
    metrics = json.loads((out / "metrics.json").read_text())
    data = metrics["data"]["train"]
    assert data["file"] == data_name
    assert (data["rows_read"], data["rows_kept"], data["repeats_merged"]) == (19, 15, 4)
    assert (data["conflicts_resolved"], data["conflict_lines"], data["texts_cut"]) == (2, [14, 17], 1)
    # trained on the merged rows: 15 texts, the conflicts resolved to negative (majority) and positive (tie)
    assert metrics["train"]["n"] == 15
    assert metrics["train"]["by_label"] == {"positive": 6 + 1 + 1, "negative": 6 + 1}
    card = (out / "MODEL_CARD.md").read_text()
    assert f"Training data as read: {data['description']}." in card
    assert "the majority won, a tie going to the one seen first" in card
    return metrics


def test_distill_merges_repeats_resolves_conflicts_and_cuts_long_texts(tmp_path):
    task = _task(tmp_path)
    data = _write_jsonl(tmp_path / "data.jsonl", _messy_rows())
    held_out = [{"text": "a lovely, funny film", "label": "positive"}, {"text": "a lovely, funny film", "label": "positive"},
                {"text": "dull and slow", "label": "negative"}, {"text": _long_text(21_000), "label": "positive"}]
    eval_file = _write_jsonl(tmp_path / "held_out.jsonl", held_out)
    out = tmp_path / "student"
    result = CliRunner().invoke(main, ["distill", str(data), "--task", str(task), "--student", "tfidf",
                                       "--eval", str(eval_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["data"]["train"] == (
        "data.jsonl: 19 rows, 15 kept: 4 repeated rows merged, 2 texts with conflicting labels resolved by majority, "
        "ties to the first seen (lines 14, 17), 1 text over 20,000 characters cut")
    # eval data keeps its repeated row (scored as written) but cuts the long text
    assert summary["data"]["eval"] == ("held_out.jsonl: 4 rows: 1 row repeating an earlier text kept as written, "
                                       "1 text over 20,000 characters cut")
    assert "· read data.jsonl: 19 rows, 15 kept" in result.stderr
    metrics = _check_messy_student(out, "data.jsonl")
    assert metrics["eval"]["n"] == 4 and metrics["data"]["eval"]["repeats_kept"] == 1
    assert "Eval data as read: held_out.jsonl: 4 rows" in (out / "MODEL_CARD.md").read_text()
    # the shipped student predicts the cut long text like the training framework did
    assert metrics["parity"]["label_agreement"] == 1.0

    # `evokd eval` reads the same file as eval data, long text cut, and says so
    result = CliRunner().invoke(main, ["eval", str(out), "--data", str(eval_file)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 4 and "1 text over 20,000 characters cut" in report["data_read"]


def test_distill_reads_a_gzipped_messy_file_the_same_way(tmp_path):
    task = _task(tmp_path)
    data = _write_jsonl(tmp_path / "data.jsonl.gz", _messy_rows(), gz=True)
    out = tmp_path / "student"
    result = CliRunner().invoke(main, ["distill", str(data), "--task", str(task), "--student", "tfidf", "--out", str(out),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"]["train"].startswith("data.jsonl.gz: 19 rows, 15 kept")
    assert "· read" not in result.stderr  # --quiet: only the JSON, which still carries the report
    _check_messy_student(out, "data.jsonl.gz")


def test_a_clean_file_is_reported_as_unchanged(tmp_path):
    task = _task(tmp_path)
    rows = [{"text": t, "label": "positive"} for t in POS] + [{"text": t, "label": "negative"} for t in NEG]
    data = _write_jsonl(tmp_path / "clean.jsonl", rows)
    rows_read, report = load_task(task).read_data(data, "train")
    assert len(rows_read) == 12 and report.describe() == "clean.jsonl: 12 rows, nothing merged, resolved or cut"


def test_classification_read_data_rule_and_cut(tmp_path):
    task = load_task(_task(tmp_path))
    rows, report = task.read_data(_write_jsonl(tmp_path / "d.jsonl", _messy_rows()), "train")
    by_text = {r["text"]: r["label"] for r in rows}
    assert by_text["not sure what I watched"] == "negative"  # 2 votes against 1
    assert by_text["an odd one, half good"] == "positive"  # 1 against 1: the first seen
    assert [r["text"] for r in rows][:12] == POS + NEG  # the order texts first appear in
    long = rows[-1]["text"]
    assert len(long) <= MAX_TEXT_CHARS and _long_text(25_000).startswith(long) and long.endswith("wonderful")
    assert report.repeats_merged == 4 and report.texts_cut == 1
    # eval keeps every row, the conflicting ones too, each with its own label
    rows, report = task.read_data(tmp_path / "d.jsonl", "eval")
    assert len(rows) == 19 and report.repeats_kept == 4 and report.repeats_merged == 0 and report.texts_cut == 1
    assert [r["label"] for r in rows if r["text"] == "an odd one, half good"] == ["positive", "negative"]


def test_conflict_lines_keep_the_first_five(tmp_path):
    rows = []
    for i in range(7):
        rows += [{"text": f"text number {i}", "label": "positive"}, {"text": f"text number {i}", "label": "negative"}]
    task = load_task(_task(tmp_path))
    kept, report = task.read_data(_write_jsonl(tmp_path / "d.jsonl", rows), "train")
    assert len(kept) == 7 and all(r["label"] == "positive" for r in kept)
    assert report.conflicts_resolved == 7 and report.conflict_lines == [1, 3, 5, 7, 9]
    assert "7 texts with conflicting labels" in report.describe() and "(lines 1, 3, 5, 7, 9, ...)" in report.describe()


def test_cut_text_at_the_last_whitespace_or_hard():
    text = "a" * 19_990 + " " + "b" * 100  # whitespace at index 19,990
    assert cut_text(text) == "a" * 19_990
    assert cut_text("x" * 25_000) == "x" * MAX_TEXT_CHARS  # no whitespace: a hard cut
    edge = "c" * MAX_TEXT_CHARS + " tail"  # whitespace exactly at MAX_TEXT_CHARS
    assert cut_text(edge) == "c" * MAX_TEXT_CHARS
    assert cut_text("short text") == "short text"


def test_ner_repeats_conflicts_and_entities_beyond_the_cut(tmp_path):
    seeds = [{"text": "Ann lives in Paris", "entities": [{"start": 0, "end": 3, "label": "PER"},
                                                          {"start": 13, "end": 18, "label": "LOC"}]}]
    task = load_task(_task(tmp_path, NER_TASK, seeds))
    per = {"start": 0, "end": 3, "label": "PER"}
    loc = {"start": 0, "end": 3, "label": "LOC"}
    filler = _long_text(20_500)
    long_text = "Bob " + filler + " Rome"  # Bob inside the cut, Rome beyond it
    rows = [{"text": "Bob went home", "entities": [per]},
            {"text": "Bob went home", "entities": [per]},  # exact repeat
            {"text": "Eve is here", "entities": [per]},  # line 3: PER, LOC, LOC -> LOC
            {"text": "Eve is here", "entities": [loc]},
            {"text": "Eve is here", "entities": [loc]},
            {"text": "Ada said so", "entities": [loc]},  # line 6: LOC, PER -> LOC (tie: first seen)
            {"text": "Ada said so", "entities": [per]},
            {"tokens": ["Tom", "met", "Sue"], "tags": ["B-PER", "O", "B-PER"]},
            {"text": long_text, "entities": [per, {"start": len(long_text) - 4, "end": len(long_text), "label": "LOC"}]}]
    data = _write_jsonl(tmp_path / "ner.jsonl", rows)
    kept, report = task.read_data(data, "train")
    assert [r["text"] for r in kept][:4] == ["Bob went home", "Eve is here", "Ada said so", "Tom met Sue"]
    assert kept[1]["entities"] == [loc] and kept[2]["entities"] == [loc]
    cut = kept[4]
    assert len(cut["text"]) <= MAX_TEXT_CHARS and cut["entities"] == [per]  # Rome, past the cut, dropped
    assert (report.rows_read, report.repeats_merged, report.conflicts_resolved, report.conflict_lines) == (9, 4, 2, [3, 6])
    assert (report.texts_cut, report.entities_dropped) == (1, 1)
    assert "conflicting entities" in report.describe() and "1 entity beyond the cut dropped" in report.describe()
    # as eval data every row stays; read strictly (seeds, tools), the long text is still refused
    rows_eval, report = task.read_data(data, "eval")
    assert len(rows_eval) == 9 and report.repeats_kept == 4 and report.entities_dropped == 1
    with pytest.raises(InputError, match="line 9: field 'text': text is 20509 characters; expected at most 20000"):
        task.read_rows(data, unique=False)


def test_pool_with_a_21244_character_text_is_read_cut_and_counted(tmp_path):
    long = _long_text(21_244)
    pool = _write_jsonl(tmp_path / "pool.jsonl", [{"text": "first text"}, {"text": long}, {"text": "first text"},
                                                  {"text": "another one"}])
    rows, report = read_pool(pool)
    assert [r["text"] for r in rows] == ["first text", cut_text(long), "first text", "another one"]
    assert len(rows[1]["text"]) <= MAX_TEXT_CHARS and all(r["label"] is None for r in rows)
    assert (report.rows_read, report.rows_kept, report.repeats_kept, report.texts_cut) == (4, 4, 1, 1)
    assert report.describe() == ("pool.jsonl: 4 rows: 1 row repeating an earlier text kept as written, "
                                 "1 text over 20,000 characters cut")
    # the `evokd pool embed` reader: one row per input row, pool_id in order, the same cut
    report = ReadReport("pool.jsonl")
    chunks = list(iter_pool_chunks(pool, 3, report))
    assert [c["pool_id"] for c in chunks] == [[0, 1, 2], [3]]
    assert chunks[0]["text"][1] == cut_text(long) and (report.rows_read, report.texts_cut, report.repeats_kept) == (4, 1, 1)
    # a .txt pool too
    txt = tmp_path / "pool.txt"
    txt.write_text(f"one\n{long}\n\ntwo\n", encoding="utf-8")
    rows, report = read_pool(txt)
    assert [len(r["text"]) <= MAX_TEXT_CHARS for r in rows] == [True] * 3 and report.texts_cut == 1


def test_generate_with_a_pool_records_and_prints_what_reading_it_changed(tmp_path):
    task = _task(tmp_path)
    long = _long_text(21_244)
    rows = ([{"text": t, "label": "positive"} for t in POS] + [{"text": t, "label": "negative"} for t in NEG]
            + [{"text": long, "label": "positive"}, {"text": POS[0], "label": "positive"}])
    pool = _write_jsonl(tmp_path / "pool.jsonl", rows)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["generate", str(task), "--strategy", "pool-random", "--pool", str(pool), "--oracle",
                                       "--student", "tfidf", "--rounds", "1", "--per-round", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    line = "pool.jsonl: 14 rows: 1 row repeating an earlier text kept as written, 1 text over 20,000 characters cut"
    assert f"pool data: {line}" in result.stdout  # under the summary table
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    config = json.loads(con.execute("SELECT config FROM runs").fetchall()[0][0])
    longest = con.execute("SELECT max(length(text)), count(*) FROM pool").fetchall()[0]
    con.close()
    assert config["data"]["pool"]["description"] == line and config["data"]["pool"]["texts_cut"] == 1
    assert longest == (len(cut_text(long)), 14)


def test_pool_embed_cuts_and_reports(tmp_path):
    long = _long_text(21_244)
    pool = _write_jsonl(tmp_path / "pool.jsonl", [{"text": t} for t in ["one text", long, "two texts", "one text", "three"]])
    out = tmp_path / "pool"
    result = CliRunner().invoke(main, ["pool", "embed", str(pool), "--out", str(out)])
    assert result.exit_code == 0, result.output
    line = "pool.jsonl: 5 rows: 1 row repeating an earlier text kept as written, 1 text over 20,000 characters cut"
    assert f"read {line}" in result.stdout
    manifest = json.loads((out / "pool.json").read_text())
    assert manifest["rows"] == 5 and manifest["data"]["description"] == line


def test_seeds_stay_strict(tmp_path):
    runner = CliRunner()
    for seeds, needle in (
        ([*SEEDS, SEEDS[0]], "seeds.jsonl: line 3: field 'text': duplicates line 1; expected unique texts"),
        ([*SEEDS, {"text": _long_text(20_001), "label": "positive"}],
         "seeds.jsonl: line 3: field 'text': text is 20001 characters; expected at most 20000"),
    ):
        task = _task(tmp_path, seeds=seeds)
        with pytest.raises(InputError):
            load_task(task).seed_rows()
        result = runner.invoke(main, ["generate", str(task), "--dry-run", "--out", str(tmp_path / "r")])
        err = result.stderr.strip()
        assert result.exit_code == 2 and err.startswith("evokd: error: ") and "\n" not in err, result.output
        assert needle in err, err
        assert not (tmp_path / "r").exists()


def test_the_task_eval_file_keeps_repeats_and_cuts(tmp_path):
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"text": "fine", "label": "positive"}, {"text": "fine", "label": "positive"},
        {"text": _long_text(20_100), "label": "negative"}]), encoding="utf-8")
    task = load_task(_task(tmp_path, TASK + "eval: eval.jsonl\n"))
    rows, report = task.eval_data()
    assert len(rows) == 3 and len(rows[2]["text"]) <= MAX_TEXT_CHARS
    assert (report.repeats_kept, report.texts_cut, report.repeats_merged) == (1, 1, 0)
    assert task.eval_rows() == rows
