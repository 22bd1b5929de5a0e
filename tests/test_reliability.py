"""Fault injection against a real HTTP server and the real dspy.LM client stack.

The server is `evokd.teacher.fake_server.FakeOpenAIServer`, a TEST DOUBLE that answers from real
sst2 sentences and injects 429s, 500s, timeouts, malformed and truncated bodies. Everything on
the client side is real: `evokd generate` → DSPy → HTTP → the run's DuckDB file.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from evokd.cli import main
from evokd.teacher.fake_server import FakeOpenAIServer

KEY = "sk-evokd-test-SECRET-0123456789"
LABELS = ["negative", "positive"]


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


def _generate(task: Path, out: Path, url: str, *extra: str, quiet: bool = True):
    args = ["generate", str(task), "--teacher", "openai/fake-model", "--api-base", url, "--out", str(out),
            *(["--quiet"] if quiet else []), "--timeout", "1", "--rounds", "2", "--per-round", "6", *extra]
    return CliRunner().invoke(main, args)


def _accepted(out: Path) -> list[tuple]:
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    try:
        return con.execute("SELECT round, source, intent, text, label FROM samples WHERE status = 'accepted'"
                           " ORDER BY round, text").fetchall()
    finally:
        con.close()


def _calls(out: Path) -> list[tuple]:
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    try:
        return con.execute("SELECT round, step, ok, cached, error FROM calls ORDER BY id").fetchall()
    finally:
        con.close()


def test_rate_limit_bursts_lose_no_sample_and_the_calls_table_shows_the_retries(tmp_path, sst2_task, sst2_pool, api_key):
    with FakeOpenAIServer(sst2_pool, LABELS) as clean:
        ok = _generate(sst2_task, tmp_path / "clean", clean.url)
    with FakeOpenAIServer(sst2_pool, LABELS, faults={"rate_limit": 0.3}) as server:
        result = _generate(sst2_task, tmp_path / "faulty", server.url, "--concurrency", "3")
    assert ok.exit_code == 0 and result.exit_code == 0, result.output
    # every round completed with exactly the samples of the fault-free run
    assert _accepted(tmp_path / "faulty") == _accepted(tmp_path / "clean")
    retries = [c for c in _calls(tmp_path / "faulty") if not c[2] and "RateLimit" in (c[4] or "")]
    assert retries, "the calls table must show the 429s that were retried"
    assert sum(o == "rate_limit" for _, _, o in server.log) == len(retries)


def test_mixed_faults_complete_every_round(tmp_path, sst2_task, sst2_pool, api_key):
    faults = {"rate_limit": 0.1, "server_error": 0.1, "timeout": 0.04, "malformed": 0.06, "truncated": 0.1, "slow": 0.05}
    with FakeOpenAIServer(sst2_pool, LABELS, faults=faults, hang_s=2.5) as server:
        # The server's faults follow each request's content, which follows the student's mistakes: tfidf
        # pins the requests to ones that meet every fault kind below (this test is about the gateway).
        result = _generate(sst2_task, tmp_path / "run", server.url, "--concurrency", "2", "--student", "tfidf")
    assert result.exit_code == 0, result.output
    rounds = [json.loads(line) for line in (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    outcomes = Counter(o.split(" ")[0] for _, _, o in server.log)
    assert {"rate_limit", "server_error", "malformed", "truncated"} <= set(outcomes)
    errors = " ".join(c[4] or "" for c in _calls(tmp_path / "run"))
    assert "RateLimit" in errors and "ServerError" in errors and "not JSON" in errors
    rows = [json.loads(line) for line in (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()]
    assert all(r["text"] and r["label"] in LABELS for r in rows)  # nothing became an empty or None row


def test_max_tokens_stops_at_the_limit_and_a_higher_limit_resumes(tmp_path, sst2_task, sst2_pool, api_key):
    out = tmp_path / "run"
    with FakeOpenAIServer(sst2_pool, LABELS) as server:
        full = _generate(sst2_task, tmp_path / "full", server.url, "--rounds", "3")
        assert full.exit_code == 0
        full_calls = _calls(tmp_path / "full")
        per_call = max(1, _tokens(tmp_path / "full") // len(full_calls))
        limit = _tokens(tmp_path / "full") // 2
        server.answered.clear()
        stopped = _generate(sst2_task, out, server.url, "--rounds", "3", "--max-tokens", str(limit))
        assert stopped.exit_code == 3, stopped.output
        assert "token budget reached" in stopped.output and "re-run" in stopped.output
        spent = _cache_tokens(out)
        biggest = _biggest_call(tmp_path / "full")
        assert limit <= spent < limit + biggest + per_call  # stopped within one call of the limit
        resumed = _generate(sst2_task, out, server.url, "--rounds", "3", "--max-tokens", str(limit * 10))
        assert resumed.exit_code == 0, resumed.output
    assert _accepted(out) == _accepted(tmp_path / "full")
    # stopped + resumed paid for exactly the calls of one uninterrupted run: the calls of the
    # stopped round came back from the run's call cache, not from the server. (Even one run asks
    # some questions twice, e.g. labeling a text a top-up wrote again: those are cache hits too.)
    assert sum(server.answered.values()) == sum(not cached for *_, cached, _ in full_calls)


def _scalar(out: Path, sql: str) -> int:
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def _tokens(out: Path) -> int:
    return _scalar(out, "SELECT sum(prompt_tokens + completion_tokens) FROM calls")


def _biggest_call(out: Path) -> int:
    return _scalar(out, "SELECT max(prompt_tokens + completion_tokens) FROM calls")


def _cache_tokens(out: Path) -> int:
    return _scalar(out, "SELECT sum(prompt_tokens + completion_tokens) FROM call_cache")


def test_max_calls_stops_cleanly_and_max_cost_needs_a_known_price(tmp_path, sst2_task, sst2_pool, api_key):
    with FakeOpenAIServer(sst2_pool, LABELS) as server:
        stopped = _generate(sst2_task, tmp_path / "run", server.url, "--max-calls", "5")
        assert stopped.exit_code == 3 and "call budget reached: 5 of --max-calls 5" in stopped.output
        assert sum(server.sent.values()) == 5
        # a budget stop still prints the summary of the committed rounds (round 0: the seeds) before its line
        shown = _generate(sst2_task, tmp_path / "shown", server.url, "--max-calls", "5", quiet=False)
        assert shown.exit_code == 3 and "call budget reached" in shown.stderr
        assert "evokd generate" in shown.stdout and "eval acc" in shown.stdout
        as_json = _generate(sst2_task, tmp_path / "json", server.url, "--max-calls", "5", "--json", quiet=False)
        assert as_json.exit_code == 3 and [r["round"] for r in json.loads(as_json.stdout)] == [0]
        no_price = _generate(sst2_task, tmp_path / "run2", server.url, "--max-cost", "0.1")
    assert no_price.exit_code == 2 and "no price is known for openai/fake-model" in no_price.output


def test_dry_run_estimates_and_sends_nothing(tmp_path, sst2_task, sst2_pool, api_key):
    with FakeOpenAIServer(sst2_pool, LABELS) as server:
        result = _generate(sst2_task, tmp_path / "run", server.url, "--dry-run")
        assert not server.sent
    assert result.exit_code == 0, result.output
    # default strategy, 2 rounds x 6 texts: warm-up (2 class calls + 6 labels), then analysis + one
    # hard-then-easy call per class + 6 labels
    assert "calls: 17 expected" in result.output
    assert "prompt tokens" in result.output and not (tmp_path / "run").exists()


def test_api_key_never_reaches_the_run_directory_or_the_messages(tmp_path, sst2_task, sst2_pool, api_key):
    with FakeOpenAIServer(sst2_pool, LABELS, faults={"server_error": 0.2}) as server:
        result = _generate(sst2_task, tmp_path / "run", server.url)
        assert f"Bearer {KEY}" in server.auth_headers  # the key was really used
    assert result.exit_code == 0
    report = CliRunner().invoke(main, ["report", str(tmp_path / "run")])
    assert report.exit_code == 0, report.output
    # a provider that echoes a wrong key in its 401 answer: the run stops with one line, key scrubbed
    with FakeOpenAIServer(sst2_pool, LABELS, require_key="sk-the-right-one") as strict:
        refused = _generate(sst2_task, tmp_path / "refused", strict.url)
    assert refused.exit_code == 2 and "Incorrect API key provided" in refused.output
    for text in (result.output, report.output, refused.output):
        assert KEY not in text
    for path in [*(tmp_path / "run").rglob("*"), *(tmp_path / "refused").rglob("*")]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


# ── kill -9 at random moments, then resume ──────────────────────────────────────────────────


def _child(args: list[str]) -> None:  # runs in a forkserver child
    os.environ["OPENAI_API_KEY"] = KEY
    try:
        main.main(args, standalone_mode=False)
    except SystemExit:
        pass


def test_kill_9_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path, sst2_task, sst2_pool):
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["evokd.cli", "evokd.loop", "evokd.teacher.gateway", "dspy", "sentence_transformers"])

    def run(out: Path, url: str, kill_after: float | None = None) -> tuple[int | None, float]:
        args = ["generate", str(sst2_task), "--teacher", "openai/fake-model", "--api-base", url, "--out", str(out),
                "--quiet", "--rounds", "3", "--per-round", "6", "--concurrency", "2",
                "--no-eval-guard"]  # every round adds texts to compare (on 200 eval rows the guard may roll one back)
        proc = ctx.Process(target=_child, args=(args,))
        start = time.perf_counter()
        proc.start()
        if kill_after is not None:
            proc.join(kill_after)
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
        proc.join(120)
        assert not proc.is_alive()
        return proc.exitcode, time.perf_counter() - start

    with FakeOpenAIServer(sst2_pool, LABELS, latency_s=0.02) as server:
        code, _ = run(tmp_path / "warm-up", server.url)  # starts the forkserver; its time is not a run's
        assert code == 0
        server.answered.clear()
        code, duration = run(tmp_path / "reference", server.url)
        assert code == 0
        reference = _accepted(tmp_path / "reference")
        reference_answers = Counter(server.answered)  # one run may ask a question twice (a cache hit, not paid)
        reference_calls = sum(reference_answers.values())
        assert len(reference) >= 6 + 3 * 5  # seeds + three rounds (a top-up-bounded round may fall 1 short)
        rng = random.Random(20261126)
        killed = 0
        for trial in range(20):
            server.answered.clear()
            out = tmp_path / f"trial{trial}"
            code, _ = run(out, server.url, kill_after=rng.uniform(0.1, duration * 0.95))
            killed += code == -signal.SIGKILL
            for _ in range(3):  # resume (a second kill is not needed; one resume must finish)
                code, _ = run(out, server.url)
                if code == 0:
                    break
            assert code == 0, f"trial {trial}: resume failed with exit code {code}"
            rows = _accepted(out)
            assert rows == reference, f"trial {trial}: resumed store differs from the uninterrupted one"
            assert len({r[3] for r in rows}) == len(rows), f"trial {trial}: duplicate rows"
            # No call is paid twice, except those in flight when the process was killed (at most
            # --concurrency of them): their answers never reached the client.
            assert sum(server.answered.values()) <= reference_calls + 2, f"trial {trial}: calls were repeated"
            extra = sum(max(0, n - reference_answers[k]) for k, n in server.answered.items())
            assert extra <= 2, f"trial {trial}: {extra} questions were answered more often than in one run"
    assert killed >= 15, f"only {killed} of 20 runs were killed before they finished"
