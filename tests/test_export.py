"""`evokd export`: every format round-trips (export, then import with evokd's readers, DuckDB, spaCy
or Hugging Face `datasets`, gives the same rows). Runs are real short runs with the scripted TEST
DOUBLE teacher (tests/made_runs.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from evokd.cli import EXPORT_FORMATS, SAMPLE_SOURCES, main
from evokd.errors import EvokdError
from evokd.export import FORMATS, SOURCES, atomic_target, bio_tag_names, parse_rounds
from evokd.io import iter_rows
from evokd.ner import read_conll, spans_to_bio, tokenize, write_conll
from evokd.task import TaskSpec
from made_runs import NER_TYPES, made_run



def export(*args) -> dict:
    result = CliRunner().invoke(main, ["export", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def dataset(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "dataset.jsonl").read_text().splitlines()]


def task_of(run: Path) -> TaskSpec:
    con = duckdb.connect(str(run / "evokd.duckdb"), read_only=True)
    task = json.loads(con.execute("SELECT task FROM runs").fetchall()[0][0])
    con.close()
    return TaskSpec.model_validate(task)


def test_cli_choices_match_the_library():
    assert EXPORT_FORMATS == FORMATS and SAMPLE_SOURCES == SOURCES


@pytest.mark.parametrize("name", ["sst2", "ner"])
def test_jsonl_is_the_dataset(name, tmp_path_factory, tmp_path):
    run = made_run(tmp_path_factory, name)
    summary = export(run, "--out", tmp_path / "d.jsonl")
    assert summary["format"] == "jsonl" and summary["rows"] == len(dataset(run))
    assert [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()] == dataset(run)
    target = "entities" if name == "ner" else "label"
    back = task_of(run).read_rows(tmp_path / "d.jsonl")
    assert [(r["text"], r[target]) for r in back] == [(r["text"], r[target]) for r in dataset(run)]


@pytest.mark.parametrize("name", ["sst2", "ner"])
def test_parquet_round_trip(name, tmp_path_factory, tmp_path):
    run = made_run(tmp_path_factory, name)
    out = tmp_path / "X.parquet"
    export(run, "--format", "parquet", "--out", out)
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}')").fetchall()[0][0] == len(dataset(run))
    assert [row for _, row in iter_rows(out)] == dataset(run)  # evokd's own Parquet reader
    target = "entities" if name == "ner" else "label"
    assert [r[target] for r in task_of(run).read_rows(out)] == [r[target] for r in dataset(run)]


def _from_csv(value: str, column: str):
    if value == "":
        return None
    if column in ("id", "round"):
        return int(value)
    if column in ("student_score", "teacher_confidence"):
        return float(value)
    if column in ("entities", "student_entities", "label_notes"):
        return json.loads(value)
    return value


@pytest.mark.parametrize("name", ["sst2", "ner"])
def test_csv_round_trip(name, tmp_path_factory, tmp_path):
    run = made_run(tmp_path_factory, name)
    out = tmp_path / "d.csv"
    export(run, "--out", out)
    back = [{k: _from_csv(v, k) for k, v in row.items()} for _, row in iter_rows(out)]
    expected = dataset(run)
    for got, want in zip(back, expected, strict=True):
        assert got.keys() == want.keys()
        for key in want:
            if isinstance(want[key], float):
                assert math.isclose(got[key], want[key], rel_tol=0, abs_tol=0), key  # repr() of a float round-trips
            else:
                assert got[key] == want[key], key
    target = "entities" if name == "ner" else "label"
    assert [r[target] for r in task_of(run).read_rows(out)] == [r[target] for r in expected]


def test_conll_reimports_identically(ner_run, tmp_path):
    out = tmp_path / "ner.conll"
    summary = export(ner_run, "--format", "conll", "--out", out)
    rows = dataset(ner_run)
    assert summary["rows"] == len(rows)
    sentences = read_conll(out)
    assert len(sentences) == len(rows)
    for sentence, row in zip(sentences, rows):
        tokens = tokenize(row["text"])
        assert sentence["tokens"] == [t.text for t in tokens]
        assert sentence["tags"] == spans_to_bio(row["text"], row["entities"], tokens)
    # evokd's NER reader takes the file as it is, with the same entities (surface and type) ...
    back = task_of(ner_run).read_rows(out)
    for b, row in zip(back, rows):
        assert [(b["text"][e["start"]:e["end"]], e["label"]) for e in b["entities"]] == \
               [(row["text"][e["start"]:e["end"]], e["label"]) for e in row["entities"]]
    # CoNLL keeps tokens, not spacing: a text whose tokens are single-space separated (most of these
    # WNUT-17 sentences) comes back as exactly the same row
    same = [(b, row) for b, row in zip(back, rows) if row["text"] == " ".join(t.text for t in tokenize(row["text"]))]
    assert len(same) >= len(rows) // 2
    assert all(b == {"text": row["text"], "entities": row["entities"]} for b, row in same)
    # ... and writing what it read gives the same file byte for byte
    again = tmp_path / "again.conll"
    write_conll(again, back)
    assert again.read_bytes() == out.read_bytes()
    assert sum(1 for r in rows for e in r["entities"]) == sum(t.startswith("B-") for s in sentences for t in s["tags"]) > 0


@pytest.mark.parametrize("name", ["sst2", "ner"])
def test_spacy_docbin_round_trip(name, tmp_path_factory, tmp_path):
    import spacy
    from spacy.tokens import DocBin

    run = made_run(tmp_path_factory, name)
    out = tmp_path / "train.spacy"
    export(run, "--out", out)
    docs = list(DocBin().from_disk(out).get_docs(spacy.blank("en").vocab))
    rows = dataset(run)
    assert len(docs) == len(rows)
    for doc, row in zip(docs, rows):
        assert doc.text == row["text"]
        assert {k: doc.user_data[k] for k in ("id", "source", "round", "intent")} == \
               {k: row[k] for k in ("id", "source", "round", "intent")}
        if name == "ner":
            assert [{"start": e.start_char, "end": e.end_char, "label": e.label_} for e in doc.ents] == row["entities"]
        else:
            assert max(doc.cats, key=doc.cats.get) == row["label"] and sum(doc.cats.values()) == 1.0
            assert set(doc.cats) == {"negative", "positive"}


def _hf_rows_as_dataset_rows(ds, name: str) -> list[dict]:
    rows = []
    label_names = ds.features["label"].names if name == "sst2" else None
    for r in ds:
        r = dict(r)
        if name == "sst2":
            r["label"] = label_names[r["label"]]
        else:
            tags = ds.features["ner_tags"].feature.names
            toks = tokenize(r["text"])
            assert r["tokens"] == [t.text for t in toks]
            assert [tags[i] for i in r["ner_tags"]] == spans_to_bio(r["text"], r["entities"], toks)
            del r["tokens"], r["ner_tags"]
        rows.append(r)
    return rows


@pytest.mark.parametrize("name", ["sst2", "ner"])
def test_hf_folder_loads_with_datasets_in_both_layouts(name, tmp_path_factory, tmp_path, monkeypatch):
    import datasets

    run = made_run(tmp_path_factory, name)
    arrow, parquet = tmp_path / "hf-arrow", tmp_path / "hf-parquet"
    assert export(run, "--format", "hf", "--out", arrow)["layout"] == "arrow"
    loaded = datasets.load_from_disk(str(arrow))
    assert _hf_rows_as_dataset_rows(loaded, name) == dataset(run)
    assert "# " in (arrow / "README.md").read_text()

    # Without the `datasets` library: a dataset card and Parquet, which datasets reads with the same features.
    monkeypatch.setattr("evokd.export.has_hf_datasets", lambda: False)
    assert export(run, "--format", "hf", "--out", parquet)["layout"] == "parquet"
    files = sorted(str(p.relative_to(parquet)) for p in parquet.rglob("*") if p.is_file())
    assert files == ["README.md", "data/train-00000-of-00001.parquet"]
    card = (parquet / "README.md").read_text()
    assert card.startswith("---\n") and "data/train-00000-of-00001.parquet" in card
    from_parquet = datasets.load_dataset(str(parquet), split="train", cache_dir=str(tmp_path / "cache"))
    assert from_parquet.features == loaded.features
    assert _hf_rows_as_dataset_rows(from_parquet, name) == dataset(run)
    if name == "ner":
        assert loaded.features["ner_tags"].feature.names == bio_tag_names(NER_TYPES)


def test_filters_and_rejected_rows(sst2_run, tmp_path):
    rows = dataset(sst2_run)
    export(sst2_run, "--source", "generated", "--round", "1-2", "--out", tmp_path / "g.jsonl")
    got = [json.loads(x) for x in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert got == [r for r in rows if r["source"] == "generated" and r["round"] in (1, 2)] and got

    export(sst2_run, "--source", "seed", "--out", tmp_path / "s.jsonl")
    assert {json.loads(x)["source"] for x in (tmp_path / "s.jsonl").read_text().splitlines()} == {"seed"}

    summary = export(sst2_run, "--include-rejected", "--out", tmp_path / "all.parquet")
    con = duckdb.connect(str(sst2_run / "evokd.duckdb"), read_only=True)
    total, rejected = con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'rejected') FROM samples").fetchall()[0]
    reasons = dict(con.execute("SELECT reject_reason, count(*) FROM samples WHERE status = 'rejected' GROUP BY 1").fetchall())
    con.close()
    assert summary["rows"] == total and rejected > 0
    got = duckdb.sql(f"SELECT reject_reason, count(*) FROM read_parquet('{tmp_path / 'all.parquet'}') "
                     "WHERE status = 'rejected' GROUP BY 1").fetchall()
    assert dict(got) == reasons


def test_parse_rounds():
    assert parse_rounds([]) is None
    assert parse_rounds(["3", "1-2", " 5 "]) == {1, 2, 3, 5}
    for bad in ("x", "3-1", "-2", "1,2"):
        with pytest.raises(EvokdError, match="--round"):
            parse_rounds([bad])


def test_export_bad_input_is_one_line_and_writes_nothing(sst2_run, ner_run, tmp_path):
    runner = CliRunner()
    keep = tmp_path / "keep.spacy"
    keep.write_text("earlier export")
    (tmp_path / "plainfile").write_text("not a folder")
    (tmp_path / "dir.jsonl").mkdir()
    cases = [
        ([sst2_run, "--format", "conll", "--out", tmp_path / "a.conll"], "is classification"),
        ([sst2_run, "--out", tmp_path / "a.txt"], "cannot tell the format"),
        ([sst2_run, "--format", "csv", "--out", tmp_path / "a.parquet"], "is for --format parquet"),
        ([sst2_run, "--include-rejected", "--out", keep], "--include-rejected"),
        ([ner_run, "--include-rejected", "--format", "conll", "--out", tmp_path / "b.conll"], "--include-rejected"),
        ([sst2_run, "--round", "9", "--out", tmp_path / "a.jsonl"], "no rows match"),
        ([sst2_run, "--round", "two", "--out", tmp_path / "a.jsonl"], "--round 'two'"),
        ([sst2_run, "--out", tmp_path / "dir.jsonl"], "is a directory"),
        ([tmp_path / "nope", "--out", tmp_path / "a.jsonl"], "nope: not found"),
        ([sst2_run, "--format", "hf", "--out", tmp_path / "plainfile"], "is a file"),
    ]
    for args, needle in cases:
        result = runner.invoke(main, ["export", *map(str, args)])
        assert result.exit_code == 2, (args, result.output)
        err = result.stderr.strip()
        assert err.startswith("evokd: error: ") and "\n" not in err and needle in err, err
    assert keep.read_text() == "earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.jsonl", "keep.spacy", "plainfile"]


def test_atomic_target_leaves_the_old_output_on_failure(tmp_path):
    out = tmp_path / "x.parquet"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_target(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.parquet"]
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "old.txt").write_text("old")
    with atomic_target(folder, directory=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in folder.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "x.parquet"]
    assert oct(folder.stat().st_mode & 0o777) != oct(0o700)  # not left private like a mkdtemp folder
