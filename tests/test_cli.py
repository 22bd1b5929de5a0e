"""The CLI end to end: generate -> distill -> predict -> eval, with the scripted TEST DOUBLE
teacher but the real embedding model, real DuckDB, real TF-IDF training and real onnxruntime.
Bad input: one line on stderr, exit code 2, nothing written."""

import json

import pytest
from click.testing import CliRunner

from evokd.cli import main


@pytest.fixture
def runner():
    return CliRunner()


def _all_commands(group, prefix=()):
    yield list(prefix)
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _all_commands(cmd, (*prefix, name))
        else:
            yield [*prefix, name]


def test_every_command_has_help_with_an_example(runner):
    found = list(_all_commands(main))
    assert ["optimize"] in found and ["pool", "embed"] in found and len(found) > 12
    for cmd in found:
        result = runner.invoke(main, [*cmd, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example:" in result.output and "evokd " in result.output


def test_generate_distill_predict_eval(runner, sst2_task, scripted_teacher, tmp_path):
    out, student = tmp_path / "run", tmp_path / "student"
    # Without the eval guard, so that both rounds' texts reach the student counted below (the guard's own
    # tests: tests/test_eval_guard.py); the summary says it did not run, and why.
    result = runner.invoke(main, ["generate", str(sst2_task), "--teacher", scripted_teacher, "--rounds", "2",
                                  "--per-round", "8", "--out", str(out), "--no-eval-guard"])
    assert result.exit_code == 0, result.output
    assert "eval acc" in result.output  # the summary table
    assert "eval guard: did not run (--no-eval-guard); every round's texts were kept" in " ".join(result.output.split())
    for name in ("evokd.duckdb", "dataset.jsonl", "rounds.jsonl"):
        assert (out / name).is_file()
    rounds = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert len(rounds) == 3 and all(isinstance(r["eval_accuracy"], float) for r in rounds)

    result = runner.invoke(main, ["distill", str(out), "--task", str(sst2_task), "--student", "tfidf", "--out", str(student)])
    assert result.exit_code == 0, result.output
    for name in ("model.onnx", "student.json", "labels.json", "metrics.json", "MODEL_CARD.md"):
        assert (student / name).is_file(), name
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["eval"]["n"] == 200 and metrics["parity"]["label_agreement"] == 1.0
    assert metrics["train"]["by_source"]["generated"] >= 14
    card = (student / "MODEL_CARD.md").read_text()
    assert "accuracy" in card and "evokd distill" in card and "onnxruntime" in card

    result = runner.invoke(main, ["predict", str(student), "a gorgeous, witty film", "a dull, lifeless mess"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.output.strip().splitlines()]
    assert len(lines) == 2 and all(r["label"] in ("negative", "positive") and 0 <= r["score"] <= 1 for r in lines)

    data = sst2_task.parent / "eval.jsonl"
    result = runner.invoke(main, ["eval", str(student), "--data", str(data)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 200 and report["accuracy"] == pytest.approx(metrics["eval"]["accuracy"])

    result = runner.invoke(main, ["predict", str(student), "--input", str(data)])
    assert result.exit_code == 0 and len(result.output.strip().splitlines()) == 200


def test_generate_resumes_on_same_dir(runner, sst2_task, scripted_teacher, tmp_path):
    args = ["generate", str(sst2_task), "--teacher", scripted_teacher, "--per-round", "4", "--out", str(tmp_path / "r"), "--quiet"]
    assert runner.invoke(main, [*args, "--rounds", "1"]).exit_code == 0
    assert runner.invoke(main, [*args, "--rounds", "2"]).exit_code == 0
    rounds = [json.loads(x)["round"] for x in (tmp_path / "r" / "rounds.jsonl").read_text().splitlines()]
    assert rounds == [0, 1, 2]


def test_generate_max_minutes_ends_after_the_round_that_crosses_it_and_resumes(runner, sst2_task, scripted_teacher,
                                                                              tmp_path):
    """--max-minutes counts the committed rounds' time, earlier sessions included: the round that crosses
    the budget is committed, then the run ends normally (exit code 0: the budget is the plan, not an
    error), its summary saying which round did not start, and resumes with more time."""
    out = tmp_path / "r"
    args = ["generate", str(sst2_task), "--teacher", scripted_teacher, "--per-round", "4", "--rounds", "3",
            "--student", "tfidf", "--out", str(out)]

    def rounds():
        return [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]

    result = runner.invoke(main, [*args, "--max-minutes", "0.00001"])  # round 0 (the seeds) already takes longer
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())  # the summary's line, however the console wrapped it
    assert "time budget reached" in said and "of --max-minutes 1e-05 minutes, so round 1 of 3 did not start" in said
    assert "Traceback" not in result.output and "error" not in result.stderr
    assert [r["round"] for r in rounds()] == [0]
    # a budget just above the time spent so far: one more round crosses it, and the run ends after it
    spent = sum(r["seconds"] for r in rounds())
    result = runner.invoke(main, [*args, "--max-minutes", str((spent + 1e-3) / 60), "--quiet"])
    assert result.exit_code == 0 and result.stdout == "", result.output  # --quiet: nothing printed
    assert [r["round"] for r in rounds()] == [0, 1]
    no_budget = runner.invoke(main, [*args, "--quiet"])  # no budget: the run goes on to round 3
    assert no_budget.exit_code == 0, no_budget.output
    assert [r["round"] for r in rounds()] == [0, 1, 2, 3]
    lines = (out / "dataset.jsonl").read_text().splitlines()
    assert len(lines) == sum(r["n_accepted"] for r in rounds())


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("evokd: error: ") and "\n" not in err, err
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize(
    "mutate, needles",
    [
        (lambda t: t.unlink(), ["task.yaml", "file not found"]),
        (lambda t: t.write_text("name: x\nkind: [oops\n"), ["task.yaml", "invalid YAML"]),
        (lambda t: (t.parent / "seeds.jsonl").write_text('{"text": "meh", "label": "neutral"}\n'),
         ["seeds.jsonl", "line 1", "field 'label'", "not a task label"]),
        (lambda t: (t.parent / "seeds.jsonl").write_text(""), ["seeds.jsonl", "no rows"]),
        (lambda t: t.write_text(t.read_text().replace("  positive: positive opinion\n", "  negative: again\n")),
         ["task.yaml", "duplicate key 'negative'"]),
        (lambda t: (t.parent / "seeds.jsonl").write_bytes('{"text": "caf\xe9", "label": "positive"}\n'.encode("latin-1")),
         ["seeds.jsonl", "not valid UTF-8"]),
        (lambda t: (t.parent / "eval.jsonl").write_text('{"text": "fine"}\n'), ["eval.jsonl", "field 'label'"]),
    ],
)
def test_generate_bad_input_is_one_line_and_writes_nothing(runner, sst2_task, scripted_teacher, tmp_path, mutate, needles):
    mutate(sst2_task)
    out = tmp_path / "out"
    result = runner.invoke(main, ["generate", str(sst2_task), "--teacher", scripted_teacher, "--out", str(out)])
    one_line_error(result, *needles)
    assert not out.exists()


def test_bad_teacher_string(runner, sst2_task, tmp_path):
    result = runner.invoke(main, ["generate", str(sst2_task), "--teacher", "gpt4", "--out", str(tmp_path / "o")])
    one_line_error(result, "--teacher 'gpt4'", "provider/model")
    assert not (tmp_path / "o").exists()


def test_distill_bad_input(runner, sst2_task, tmp_path):
    one_line_error(runner.invoke(main, ["distill", str(tmp_path / "nope"), "--task", str(sst2_task), "--out", str(tmp_path / "s")]),
                   "nope", "not found")
    (tmp_path / "empty_run").mkdir()
    one_line_error(runner.invoke(main, ["distill", str(tmp_path / "empty_run"), "--task", str(sst2_task), "--out",
                                        str(tmp_path / "s")]), "dataset.jsonl", "not found")
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "good", "label": "positive"}\n{"text": "bad", "label": "awful"}\n')
    one_line_error(runner.invoke(main, ["distill", str(data), "--task", str(sst2_task), "--out", str(tmp_path / "s")]),
                   "d.jsonl", "line 2", "field 'label'")
    one_line_error(runner.invoke(main, ["distill", str(data), "--task", str(sst2_task), "--student", "bert",
                                        "--out", str(tmp_path / "s")]), "--student 'bert'")
    assert not (tmp_path / "s").exists()


def test_predict_bad_student_dir(runner, tmp_path):
    one_line_error(runner.invoke(main, ["predict", str(tmp_path), "hello"]), str(tmp_path))
    one_line_error(runner.invoke(main, ["predict", str(tmp_path)]), "no input")


def test_distill_takes_the_task_from_the_run(runner, sst2_run, tmp_path):
    """`distill RUN` without --task trains on the task the run recorded; a plain file still needs --task."""
    out = tmp_path / "student"
    result = runner.invoke(main, ["distill", str(sst2_run), "--student", "tfidf", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "sst2-small" and metrics["train"]["n"] > 6 and "eval" in metrics
    result = runner.invoke(main, ["distill", str(sst2_run / "dataset.jsonl"), "--out", str(tmp_path / "s2")])
    assert result.exit_code == 2 and "--task TASK.yaml is required" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "s2").exists()
