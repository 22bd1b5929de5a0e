"""The hosted-teacher path with a REAL OpenAI-compatible server (no test double): llama-cpp-python's
own server (the `[local]` extra installs its `server` dependencies without rebuilding llama.cpp)
serves the embedded model on loopback, and `evokd generate --teacher openai/NAME --api-base URL`
talks to it the way users with Ollama, vLLM or a llama.cpp server do: JSON asked for in the prompt
only (no grammar), usage and errors as the server reports them. Two rounds of two texts, so the
analysis, generation and labeling steps all cross the wire (about a minute on two cores)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import duckdb
import pytest
from click.testing import CliRunner

from evokd.cli import main
from evokd.teacher.local import ensure_model

ALIAS = "qwen-served"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    port = _free_port()
    threads = os.environ.get("EVOKD_LOCAL_THREADS", "2")
    log = tmp_path_factory.mktemp("server") / "server.log"  # a file, not a pipe: llama.cpp logs a lot
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(ensure_model()), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "4096", "--n_threads", threads, "--model_alias", ALIAS],
            stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as resp:
                    if ALIAS in resp.read().decode():
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_generate_through_a_served_model(sst2_task, server_url, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["generate", str(sst2_task), "--teacher", f"openai/{ALIAS}", "--api-base", server_url,
                                       "--rounds", "2", "--per-round", "2", "--student", "tfidf", "--timeout", "300",
                                       "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    try:
        teacher, api_base = con.execute("SELECT teacher, api_base FROM runs").fetchall()[0]
        calls = con.execute("SELECT step, ok, prompt_tokens, completion_tokens, model FROM calls").fetchall()
        generated = con.execute("SELECT count(*) FROM samples WHERE round >= 1 AND source = 'generated'").fetchall()[0][0]
        confidences = [c for (c,) in con.execute("SELECT teacher_confidence FROM samples WHERE labeler = 'teacher' "
                                                  "AND teacher_label IS NOT NULL").fetchall()]
    finally:
        con.close()
    assert teacher == f"openai/{ALIAS}" and api_base == server_url
    assert {step for step, *_ in calls} >= {"analyze", "generate", "label"}, calls
    assert all(model == f"openai/{ALIAS}" for *_, model in calls)
    # the server's own usage counts reach the call log
    assert all(p > 0 and c > 0 for _, ok, p, c, _ in calls if ok) and any(ok for _, ok, *_ in calls)
    assert generated >= 1
    # the server returns token logprobs, so every label the teacher gave carries its probability
    assert confidences and all(c is not None and 0 < c <= 1 for c in confidences), confidences
    rounds = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [0, 1, 2] and rounds[-1]["eval_accuracy"] is not None
