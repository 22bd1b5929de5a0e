"""Every kind of defect in a task file or its data: one line naming file, line and field, exit 2,
and no output directory. Runs the real CLI in-process; no teacher is ever called (the defects
are caught before the LM is built)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evokd.cli import main

TASK = ("name: bad\nkind: classification\ndescription: Sentiment of a sentence.\n"
        "labels:\n  negative: negative opinion\n  positive: positive opinion\nseeds: seeds.jsonl\n")
NER_TASK = "name: badner\nkind: ner\ndescription: People and places.\nlabels:\n  PER: person\n  LOC: place\nseeds: seeds.jsonl\n"
GOOD = [{"text": "a warm, funny film", "label": "positive"}, {"text": "dull and far too long", "label": "negative"}]


def _lines(rows: list) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


# (case id, task yaml, seeds file bytes, expected fragments of the one-line message)
CASES = [
    ("unknown kind", TASK.replace("classification", "regression"), _lines(GOOD), ["task.yaml", "field 'kind'"]),
    ("missing labels", TASK.split("labels:")[0] + "seeds: seeds.jsonl\n", _lines(GOOD), ["task.yaml", "field 'labels'"]),
    ("labels of wrong type", TASK.replace("labels:\n  negative: negative opinion\n  positive: positive opinion\n",
                                          "labels: 5\n"), _lines(GOOD), ["task.yaml", "field 'labels'"]),
    ("description of wrong type", TASK.replace("description: Sentiment of a sentence.", "description: [1, 2]"),
     _lines(GOOD), ["task.yaml", "field 'description'"]),
    ("duplicate key", TASK + "name: again\n", _lines(GOOD), ["task.yaml", "duplicate key 'name'"]),
    ("seeds file missing", TASK.replace("seeds.jsonl", "nowhere.jsonl"), _lines(GOOD), ["task.yaml", "field 'seeds'"]),
    ("text of wrong type", TASK, _lines([*GOOD, {"text": 5, "label": "positive"}]),
     ["seeds.jsonl", "line 3", "field 'text'", "expected a string"]),
    ("label not in set", TASK, _lines([*GOOD, {"text": "ok", "label": "neutral"}]),
     ["seeds.jsonl", "line 3", "field 'label'", "not a task label"]),
    ("missing label", TASK, _lines([*GOOD, {"text": "ok"}]), ["seeds.jsonl", "line 3", "field 'label'"]),
    ("empty text", TASK, _lines([*GOOD, {"text": "   ", "label": "positive"}]), ["line 3", "field 'text'", "empty text"]),
    ("1 MB text", TASK, _lines([*GOOD, {"text": "a" * 1_000_000, "label": "positive"}]),
     ["line 3", "field 'text'", "1000000 characters"]),
    ("control characters", TASK, _lines([*GOOD, {"text": "bell\u0007here", "label": "positive"}]),
     ["line 3", "field 'text'", "control characters"]),
    ("mixed encodings", TASK, _lines([*GOOD, '{"text": "caf\xe9 au lait", "label": "positive"}'.encode("latin-1")]),
     ["seeds.jsonl", "line 3", "not valid UTF-8"]),
    ("truncated JSONL line", TASK, _lines(GOOD) + b'{"text": "cut off here", "lab', ["seeds.jsonl", "line 3", "invalid JSON"]),
    ("duplicated ids", TASK, _lines([{**GOOD[0], "id": 7}, {**GOOD[1], "id": 7}]),
     ["seeds.jsonl", "line 2", "field 'id'", "duplicates line 1"]),
    ("duplicated texts", TASK, _lines([*GOOD, GOOD[0]]), ["line 3", "field 'text'", "duplicates line 1"]),
    ("not an object", TASK, _lines([*GOOD, ["a", "positive"]]), ["line 3", "expected a JSON object"]),
    ("NER span outside the text", NER_TASK, _lines([{"text": "Ada lives in Paris", "entities": [
        {"start": 13, "end": 40, "label": "LOC"}]}]), ["seeds.jsonl", "line 1", "field 'entities[0]"]),
    ("NER span misaligned with tokens", NER_TASK, _lines([{"text": "Ada lives in Paris", "entities": [
        {"start": 1, "end": 3, "label": "PER"}]}]), ["seeds.jsonl", "line 1", "field 'entities[0]"]),
    ("NER unknown type", NER_TASK, _lines([{"text": "Ada lives in Paris", "entities": [
        {"start": 0, "end": 3, "label": "ORG"}]}]), ["line 1", "field 'entities[0]", "ORG"]),
    ("NER tags and tokens of different length", NER_TASK, _lines([{"tokens": ["Ada", "lives"], "tags": ["B-PER"]}]),
     ["line 1", "field 'tags'", "1 tags for 2 tokens"]),
]


@pytest.mark.parametrize("case,task_yaml,seeds,expected", CASES, ids=[c[0] for c in CASES])
def test_defect_gives_one_line_exit_2_and_no_output(tmp_path, case, task_yaml, seeds, expected):
    (tmp_path / "task.yaml").write_text(task_yaml, encoding="utf-8")
    (tmp_path / "seeds.jsonl").write_bytes(seeds)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["generate", str(tmp_path / "task.yaml"), "--teacher", "openai/never-called",
                                       "--api-base", "http://127.0.0.1:9/v1", "--out", str(out), "--quiet"])
    message = result.output.strip()
    assert result.exit_code == 2, message
    assert "\n" not in message and message.startswith("evokd: error: "), message
    assert "Traceback" not in message
    for fragment in expected:
        assert fragment in message, (fragment, message)
    assert not out.exists()


def test_bom_and_crlf_are_read_like_clean_utf8(tmp_path):
    from evokd.task import load_task

    (tmp_path / "task.yaml").write_bytes(b"\xef\xbb\xbf" + TASK.replace("\n", "\r\n").encode())
    (tmp_path / "seeds.jsonl").write_bytes(b"\xef\xbb\xbf" + _lines(GOOD).replace(b"\n", b"\r\n"))
    task = load_task(tmp_path / "task.yaml")
    assert task.name == "bad" and task.label_names == ["negative", "positive"]
    assert [(r["text"], r["label"]) for r in task.seed_rows()] == [(r["text"], r["label"]) for r in GOOD]


def test_bad_distill_and_eval_inputs_name_file_line_and_field(tmp_path):
    (tmp_path / "task.yaml").write_text(TASK, encoding="utf-8")
    (tmp_path / "seeds.jsonl").write_bytes(_lines(GOOD))
    data = tmp_path / "data.jsonl"
    data.write_bytes(_lines([*GOOD, {"text": "fine", "label": "maybe"}]))
    out = tmp_path / "student"
    result = CliRunner().invoke(main, ["distill", str(data), "--task", str(tmp_path / "task.yaml"), "--out", str(out)])
    assert result.exit_code == 2 and "data.jsonl: line 3: field 'label'" in result.output
    assert not out.exists()
