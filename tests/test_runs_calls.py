"""`evokd runs`, `evokd calls` and `evokd generate --json`: real run stores made by real short runs
with the scripted TEST DOUBLE teacher (tests/made_runs.py); copies of them stand in for other runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from evokd.cli import main
from evokd.run_dir import STORE_NAME
from evokd.runs import STORE_NAME as RUNS_STORE_NAME
from evokd.store import _MIGRATIONS, SCHEMA_VERSION
from made_runs import made_run



def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("evokd: error: ") and "\n" not in err and "Traceback" not in result.output, err
    for needle in needles:
        assert needle in err, err


def test_store_name_is_the_loops():
    assert RUNS_STORE_NAME == STORE_NAME


def test_runs_lists_every_run_with_its_state(sst2_run, ner_run, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(sst2_run, root / "sst2")
    shutil.copytree(ner_run, root / "deep" / "ner")
    shutil.copytree(sst2_run, root / "partial")
    con = duckdb.connect(str(root / "partial" / STORE_NAME))
    con.execute("DELETE FROM rounds WHERE round = 3")  # as if killed after round 2 of 3
    con.close()
    shutil.copytree(sst2_run, root / ".hidden" / "skipped")
    (root / "broken").mkdir()
    (root / "broken" / STORE_NAME).write_text("not a database")

    result = invoke("runs", root, "--json")
    assert result.exit_code == 0, result.output
    found = {Path(r["dir"]).relative_to(root).as_posix(): r for r in json.loads(result.stdout)}
    assert set(found) == {"sst2", "deep/ner", "partial", "broken"}

    rounds = [json.loads(x) for x in (sst2_run / "rounds.jsonl").read_text().splitlines()]
    best = max(r["eval_accuracy"] for r in rounds)
    s = found["sst2"]
    assert (s["status"], s["task"], s["kind"], s["teacher"]) == ("complete", "sst2-small", "classification",
                                                                 "scripted-test-double")
    assert (s["rounds_done"], s["rounds_planned"]) == (3, 3)
    assert s["samples"] == len((sst2_run / "dataset.jsonl").read_text().splitlines())
    assert s["best_metric"] == best and rounds[s["best_round"]]["eval_accuracy"] == best
    assert s["seed_metric"] == rounds[0]["eval_accuracy"] and s["metric"] == "accuracy"
    assert s["calls"] == sum(r["n_calls"] for r in rounds) and s["failed_calls"] > 0
    n = found["deep/ner"]
    assert n["metric"] == "entity F1" and n["kind"] == "ner" and n["status"] == "complete"
    assert (found["partial"]["status"], found["partial"]["rounds_done"]) == ("partial", 2)
    assert found["broken"]["status"] == "unreadable" and "error" in found["broken"]

    result = invoke("runs", root)
    assert result.exit_code == 0, result.output
    lines = result.stdout
    assert "sst2-small" in lines and "wnut-small" in lines and "partial" in lines and "unreadable" in lines
    assert f"{best:.3f} (accuracy, round {s['best_round']})" in lines


def test_runs_shows_a_run_being_written_as_running(sst2_run, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(sst2_run, root / "busy")
    # Another process holds the store open for writing, as `evokd generate` does during a run.
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(60)", str(root / "busy" / STORE_NAME)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        result = invoke("runs", root, "--json")
        assert result.exit_code == 0, result.output
        (busy,) = json.loads(result.stdout)
        assert busy["status"] == "running", busy
        one_line_error(invoke("calls", root / "busy"), "still writing")
    finally:
        holder.kill()
        holder.wait()


def test_runs_on_an_empty_or_missing_root(tmp_path):
    result = invoke("runs", tmp_path)
    assert result.exit_code == 0 and "no runs under" in result.stderr
    result = invoke("runs", tmp_path, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    one_line_error(invoke("runs", tmp_path / "nope"), "nope: not found")


def test_reading_an_older_store_migrates_it_first(tmp_path):
    path = tmp_path / "old" / STORE_NAME
    path.parent.mkdir()
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMP)")
    for version, sql in enumerate(_MIGRATIONS[:-1], start=1):
        con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
    con.execute("INSERT INTO runs VALUES ('r1', now(), 'old-task', 'classification', ?, 'local', NULL, ?, '0.0.1')",
                [json.dumps({"name": "old-task", "kind": "classification"}), json.dumps({"rounds": 1})])
    con.execute("INSERT INTO rounds (round, seconds, n_calls, n_failed_calls, prompt_tokens, completion_tokens, "
                "eval_accuracy, rejected_by_reason) VALUES (0, 1.5, 0, 0, 0, 0, 0.61, '{}')")
    con.close()
    result = invoke("runs", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)
    assert (run["task"], run["rounds_done"], run["seed_metric"], run["status"]) == ("old-task", 0, 0.61, "partial")
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0] == SCHEMA_VERSION
    con.close()


def test_calls_log_and_filters(sst2_run):
    con = duckdb.connect(str(sst2_run / STORE_NAME), read_only=True)
    total, failed, label_r1 = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE NOT ok), count(*) FILTER (WHERE round = 1 AND step = 'label') FROM calls"
    ).fetchall()[0]
    con.close()
    assert failed > 0 and label_r1 > 0

    result = invoke("calls", sst2_run, "--json")
    assert result.exit_code == 0, result.output
    calls = json.loads(result.stdout)
    assert len(calls) == total and [c["id"] for c in calls] == sorted(c["id"] for c in calls)
    assert {"round", "step", "attempt", "model", "prompt_tokens", "completion_tokens", "latency_s", "ok", "error"} <= set(calls[0])

    failed_calls = json.loads(invoke("calls", sst2_run, "--failed", "--json").stdout)
    assert len(failed_calls) == failed and all(not c["ok"] and c["error"] for c in failed_calls)
    # every failure was retried: a later attempt of the same step in the same round exists
    assert all(any(o["round"] == c["round"] and o["step"] == c["step"] and o["attempt"] == c["attempt"] + 1
                   for o in calls) for c in failed_calls)

    some = json.loads(invoke("calls", sst2_run, "--round", "1", "--step", "label", "--json").stdout)
    assert len(some) == label_r1 and {(c["round"], c["step"]) for c in some} == {(1, "label")}
    last = json.loads(invoke("calls", sst2_run, "--last", "3", "--json").stdout)
    assert last == calls[-3:]

    result = invoke("calls", sst2_run, "--failed")
    assert result.exit_code == 0, result.output
    assert f"{failed} calls, {failed} failed" in result.stdout and "failed:" in result.stdout


def test_calls_bad_input(sst2_run, tmp_path):
    one_line_error(invoke("calls", sst2_run, "--step", "dream"), "--step 'dream'", "analyze", "label")
    one_line_error(invoke("calls", sst2_run, "--round", "42"), "--round 42", "0–3")
    one_line_error(invoke("calls", tmp_path), "evokd.duckdb: not found")
    (tmp_path / "f.txt").write_text("x")
    one_line_error(invoke("calls", tmp_path / "f.txt"), "is a file")


def test_generate_json_progress_and_summary(sst2_task, scripted_teacher, tmp_path):
    out = tmp_path / "run"
    result = invoke("generate", sst2_task, "--teacher", scripted_teacher, "--rounds", "1", "--per-round", "4",
                    "--out", out, "--json")
    assert result.exit_code == 0, result.output
    rounds = json.loads(result.stdout)
    assert [r["round"] for r in rounds] == [0, 1] and isinstance(rounds[1]["eval_accuracy"], float)
    events = [json.loads(line) for line in result.stderr.splitlines()]
    kinds = [e["event"] for e in events]
    # first what reading the eval file changed (nothing here), then the steps
    assert kinds[:2] == ["data", "step"] and "round_start" in kinds and kinds.count("round") == 2
    assert events[0]["use"] == "eval" and "nothing merged, resolved or cut" in events[0]["description"]
    done = [e for e in events if e["event"] == "round"]
    assert [e["record"]["round"] for e in done] == [0, 1]
    assert done[1]["record"]["n_accepted"] == rounds[1]["n_accepted"] and done[1]["record"]["seconds"] > 0
