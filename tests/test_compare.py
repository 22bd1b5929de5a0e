"""`evokd compare RUN`: the seed-only student, the final student and the run's teacher on the same
eval rows. Real run (real loop, MiniLM embeddings, DuckDB, the tfidf student); the teacher is the
scripted TEST DOUBLE of conftest (`--teacher scripted`), which answers from real SST-2 sentences:
gold labels for its pool's texts, the first label for any other text."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from evokd.cli import main


@pytest.fixture
def run_dir(sst2_task, scripted_teacher, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["generate", str(sst2_task), "--teacher", scripted_teacher, "--rounds", "2",
                                       "--per-round", "6", "--student", "tfidf", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def compare(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)])


def test_compare_scores_both_students_and_the_teacher_on_the_same_rows(run_dir, sst2_task, sst2_pool):
    result = compare(run_dir, "--teacher-n", 30, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    eval_rows = [json.loads(x) for x in (sst2_task.parent / "eval.jsonl").read_text().splitlines()]
    assert out["eval"]["n"] == len(eval_rows) == 200 and out["kind"] == "classification"
    dataset = [json.loads(x) for x in (run_dir / "dataset.jsonl").read_text().splitlines()]
    assert out["seed_only"]["train_rows"] == 6 and out["final"]["train_rows"] == len(dataset) > 6
    assert out["seed_only"]["student"] == out["final"]["student"] == "tfidf"
    # trained as the run trained its students (--noise: the teacher's confidences as weights), so the final
    # and seed-only students are the run's last and first: the same accuracy on the task's eval rows
    rounds = [json.loads(x) for x in (run_dir / "rounds.jsonl").read_text().splitlines()]
    assert out["final"]["eval"]["accuracy"] == pytest.approx(rounds[-1]["eval_accuracy"])
    assert out["seed_only"]["eval"]["accuracy"] == pytest.approx(rounds[0]["eval_accuracy"])
    for key in ("seed_only", "final"):
        assert out[key]["eval"]["n"] == 200 and out[key]["on_teacher_rows"]["n"] == 30
    teacher = out["teacher"]
    assert teacher["teacher"] == "scripted" and teacher["n"] == 30 and len(teacher["labels"]) == 30
    assert teacher["reused"] is False and teacher["prompt"]["label_format"] == "plain"
    # the double answers the first label for texts outside its pool: its accuracy is the share of those rows
    picked = [eval_rows[i] for i in teacher["rows"]]
    gold_of = {r["text"]: r["label"] for r in sst2_pool}
    expected = [gold_of.get(r["text"], "negative") for r in picked]
    assert teacher["labels"] == expected
    assert teacher["eval"]["accuracy"] == pytest.approx(sum(e == r["label"] for e, r in zip(expected, picked)) / 30)
    assert json.loads((run_dir / "compare.json").read_text()) == out

    # again: the teacher's labels come back from compare.json instead of new calls; the text view
    result = compare(run_dir, "--teacher-n", 30, "--quiet")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("sst2-small: accuracy on 200 eval rows of eval.jsonl (and on the 30 of them")
    assert [line.split()[0] for line in lines[1:5]] == ["seed-only", "final", "teacher", "teacher"]
    assert f"{out['final']['eval']['accuracy']:.3f}" in lines[2] and f"{teacher['eval']['accuracy']:.3f}" in lines[3]
    # the teacher's right answers per label, counted from its labels: a headline accuracy hides a label it misses
    picked_gold = [r["label"] for r in picked]
    right = {lab: sum(e == g == lab for e, g in zip(expected, picked_gold)) for lab in ("negative", "positive")}
    assert lines[4] == "  teacher per label, right of gold: " + ", ".join(
        f"{lab} {right[lab]}/{picked_gold.count(lab)}" for lab in ("negative", "positive") if picked_gold.count(lab))
    missed = [lab for lab in ("negative", "positive") if picked_gold.count(lab) >= 3 and right[lab] / picked_gold.count(lab) < 0.5]
    assert (lines[5].startswith(f"  the teacher misses {', '.join(missed)} (") if missed else len(lines) == 5), lines
    again = json.loads((run_dir / "compare.json").read_text())["teacher"]
    assert again["reused"] is True and again["labels"] == teacher["labels"]


def test_compare_without_the_teacher_and_on_other_rows(run_dir, tmp_path):
    other = tmp_path / "other.jsonl.gz"
    import gzip

    with gzip.open(other, "wt", encoding="utf-8") as fh:
        fh.write('{"text": "a wonderful, moving film", "label": "positive"}\n{"text": "dull and lifeless", "label": "negative"}\n')
    result = compare(run_dir, "--teacher-n", 0, "--eval", other, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["teacher"] is None and out["eval"]["n"] == 2 and out["final"]["eval"]["n"] == 2


def test_compare_bad_input_is_one_line(run_dir, tmp_path):
    for args, needle in (([tmp_path / "nope"], "nope"), ([run_dir, "--eval", tmp_path / "missing.jsonl"], "missing.jsonl")):
        result = compare(*args)
        err = result.stderr.strip()
        assert result.exit_code == 2 and "\n" not in err and "Traceback" not in result.output, result.output
        assert needle in err


def test_the_teacher_line_names_the_labels_it_misses():
    """Logic test of the per-label line: ag_news as the embedded teacher labels it (Sci/Tech as Business)."""
    from evokd.compare import _teacher_per_label
    from evokd.metrics import classification_report

    labels = ["World", "Sports", "Business", "Sci/Tech"]
    gold = ["World"] * 10 + ["Sports"] * 10 + ["Business"] * 10 + ["Sci/Tech"] * 10 + ["Sports"] * 2
    said = ["World"] * 9 + ["Business"] + ["Sports"] * 10 + ["Business"] * 19 + ["Sci/Tech"] + ["World"] * 2
    lines = _teacher_per_label(classification_report(gold, said, labels)["per_label"], "label")
    assert lines[0] == "  teacher per label, right of gold: World 9/10, Sports 10/12, Business 10/10, Sci/Tech 1/10"
    assert lines[1].startswith("  the teacher misses Sci/Tech (right on fewer than half") and len(lines) == 2
    # a label it gets right half the time, or one with too few rows to tell, is not named
    lines = _teacher_per_label(classification_report(["a"] * 4 + ["b"] * 2, ["a", "a", "b", "b", "a", "a"], ["a", "b"])["per_label"],
                               "label")
    assert lines == ["  teacher per label, right of gold: a 2/4, b 0/2"]
