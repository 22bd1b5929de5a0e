"""The embedded offline teacher (`--teacher local`).

The first group checks model assembly with small fake part files and runs anywhere. The
second group, marked `slow`, uses the REAL embedded model (Qwen2.5-Coder-1.5B GGUF, ~1.1 GB,
llama-cpp-python); `make test` installs the `[local]` extra, and without it these tests fail.
"""

import math
import os
import sys
import time
from typing import Literal

import pytest

from evokd.teacher import local
from evokd.teacher.local import LocalTeacherUnavailable

# ── assembly, with fake parts ────────────────────────────────────────────────


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """12 tiny parts whose content names their number; discovery returns them out of order."""
    import hashlib

    monkeypatch.setenv("EVOKD_HOME", str(tmp_path / "home"))
    parts = {}
    for n in (10, 2, 9, 1, 12, 3, 11, 4, 5, 6, 7, 8):
        parts[n] = tmp_path / "site" / f"part{n:02d}.bin"
        parts[n].parent.mkdir(exist_ok=True)
        parts[n].write_bytes(f"<part{n}>".encode())
    expected = b"".join(f"<part{n}>".encode() for n in range(1, 13))
    monkeypatch.setattr(local, "N_PARTS", 12)
    monkeypatch.setattr(local, "MODEL_SIZE", len(expected))
    monkeypatch.setattr(local, "MODEL_SHA256", hashlib.sha256(expected).hexdigest())
    monkeypatch.setattr(local, "_discover_parts", lambda: dict(parts))
    return expected


def test_parts_are_joined_in_numeric_order(fake_parts):
    path = local.ensure_model()
    assert path == local.model_path() and path.parent == local.evokd_home() / "models"
    assert path.read_bytes() == fake_parts  # part10 comes after part9, not after part1
    assert local._sidecar_says_verified(path)


def test_home_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv("EVOKD_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert local.model_path() == tmp_path / "evokd" / "models" / local.MODEL_FILENAME


def test_verified_file_is_trusted_without_rehashing(fake_parts, monkeypatch):
    local.ensure_model()
    monkeypatch.setattr(local, "_sha256_file", lambda path: pytest.fail("re-hashed a file the sidecar vouches for"))
    assert local.ensure_model().read_bytes() == fake_parts


def test_corrupted_file_is_rebuilt(fake_parts):
    path = local.ensure_model()
    path.write_bytes(b"X" * len(fake_parts))  # same size, new mtime: the sidecar no longer vouches
    os.utime(path, ns=(0, 0))
    assert local.ensure_model().read_bytes() == fake_parts


def test_leftover_temp_file_is_never_used_and_swept(fake_parts):
    models = local.model_path().parent
    models.mkdir(parents=True)
    leftover = models / f".{local.MODEL_FILENAME}.4242.deadbeef.tmp"
    leftover.write_bytes(b"half-writ")
    old = time.time() - 3600
    os.utime(leftover, (old, old))
    assert local.ensure_model().read_bytes() == fake_parts
    assert not leftover.exists()


def test_kill_during_write_leaves_no_final_file(fake_parts, monkeypatch):
    def killed(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(local.os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        local.ensure_model()
    models = local.model_path().parent
    assert not local.model_path().exists()
    assert list(models.iterdir()) == []  # the temp file went too


def test_hash_mismatch_is_one_line_naming_file_and_expected_hash(fake_parts, monkeypatch):
    monkeypatch.setattr(local, "MODEL_SHA256", "0" * 64)
    with pytest.raises(LocalTeacherUnavailable) as err:
        local.ensure_model()
    message = str(err.value)
    assert "\n" not in message
    assert local.MODEL_FILENAME in message and "0" * 64 in message
    assert not local.model_path().exists()


def test_missing_parts_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOKD_HOME", str(tmp_path))
    monkeypatch.setattr(local, "_discover_parts", lambda: {})
    with pytest.raises(LocalTeacherUnavailable) as err:
        local.ensure_model()
    message = str(err.value)
    assert "\n" not in message
    assert "pip install 'evokd[local]'" in message and "--teacher openai/gpt-4o-mini" in message


def test_missing_llama_cpp_gives_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(LocalTeacherUnavailable) as err:
        local.make_local_lm()
    message = str(err.value)
    assert "\n" not in message
    assert "pip install 'evokd[local]'" in message and "--api-base http://127.0.0.1:8080/v1" in message


def test_threads_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("EVOKD_LOCAL_THREADS", "3")
    assert local.default_threads() == 3
    monkeypatch.delenv("EVOKD_LOCAL_THREADS")
    assert 1 <= local.default_threads() <= 4


def test_teacher_info_reports_verification(fake_parts):
    local.ensure_model()
    info = local.teacher_info()
    assert info["verified"] and info["sha256"] == local.MODEL_SHA256 and info["parts_installed"] == 12
    local.model_path().write_bytes(b"X" * len(fake_parts))
    info = local.teacher_info()
    assert not info["verified"] and info["sha256"] != local.MODEL_SHA256


# ── the engine contract, with a stand-in for llama.cpp ───────────────────────


def test_engine_sends_schema_as_grammar_and_fresh_seeds(monkeypatch):
    """The engine's contract with llama.cpp, with TEST DOUBLES for the model's contexts and for the writer:
    DSPy's schema becomes a grammar, each call gets a fresh seed, usage reaches DSPy."""
    import threading
    from typing import Literal

    import dspy

    from evokd.teacher.llama_decoding import Written

    calls = []

    def fake_write(llama, tokens, **kwargs):  # TEST DOUBLE for llama_decoding.write
        calls.append(kwargs)
        return Written(text='{"label": "positive"}', completion_tokens=5, finish_reason="stop", reused=0, evaluated=11)

    slots = type("FakeSlots", (), {"lock": threading.Lock(), "get": lambda self, family: object()})()  # TEST DOUBLE
    monkeypatch.setattr(local, "_load_llama", lambda *args: slots)
    monkeypatch.setattr(local, "prompt_tokens", lambda llama, messages: list(range(11)))
    monkeypatch.setattr(local, "write", fake_write)
    monkeypatch.setattr(local, "grammar_for", lambda response_format: response_format)  # what the writer is handed
    lm = dspy.LM(local.MODEL_NAME, engine=local.LlamaEngine(model_path="unused.gguf"), temperature=0.8, cache=False)

    class Sentiment(dspy.Signature):
        sentence: str = dspy.InputField()
        label: Literal["positive", "negative"] = dspy.OutputField()

    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        assert dspy.Predict(Sentiment)(sentence="fine").label == "positive"
        dspy.Predict(Sentiment)(sentence="fine")
    first, second = calls
    assert first["grammar"]["type"] == "json_object"
    assert first["grammar"]["schema"]["properties"]["label"]["enum"] == ["positive", "negative"]
    assert first["temperature"] == 0.8 and first["seed"] != second["seed"]
    assert lm.history[-1]["usage"]["prompt_tokens"] == 11


# ── the REAL embedded model (slow; needs the [local] extra) ──────────────────




@pytest.fixture(scope="module")
def real_lm():
    import dspy

    lm = local.make_local_lm(temperature=0.8, max_tokens=256)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        yield lm


@pytest.mark.slow
def test_real_model_is_assembled_and_verified():
    path = local.ensure_model()
    assert path.stat().st_size == local.MODEL_SIZE
    info = local.teacher_info()
    assert info["verified"] and info["llama_cpp"] and info["sha256"] == local.MODEL_SHA256


@pytest.mark.slow
def test_real_model_labels_with_a_typed_literal(real_lm):
    import dspy

    class Sentiment(dspy.Signature):
        """Classify the sentiment of a movie review sentence."""

        sentence: str = dspy.InputField()
        label: Literal["positive", "negative"] = dspy.OutputField()

    out = dspy.Predict(Sentiment)(sentence="A warm, funny and beautifully acted film.")
    assert out.label in ("positive", "negative")
    usage = real_lm.history[-1]["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


@pytest.mark.slow
def test_real_model_answers_the_plain_label_question_with_a_bare_name(real_lm):
    """evokd's default labeling format on the REAL model: a label name, scored among the names."""
    from pathlib import Path

    from evokd.task import load_task
    from evokd.teacher.teacher import Teacher

    task = load_task(Path(__file__).resolve().parents[1] / "datasets" / "sst2" / "task.yaml")
    teacher = Teacher(task, real_lm)
    assert teacher.label_vote(0, "a warm , funny and beautifully acted film .") == "positive"
    assert teacher.label_vote(0, "a tedious , joyless mess that wastes its cast .") == "negative"
    from evokd.teacher.adapter import PlainLabelAdapter

    inputs = {"task": task.description, "labels": teacher.describe_labels(), "demonstrations": "",
              "text": "one of the year 's best films ."}
    (answer,) = PlainLabelAdapter()(real_lm, {"temperature": 0.0, "max_tokens": 8}, teacher.label.signature, [], inputs)
    assert answer["label"] == "positive" and real_lm.history[-1]["outputs"][0]["text"] == "positive"  # the bare name
    # scored, not decoded: every name comes back with its probability among the names
    (entry,) = answer["logprobs"]["content"]
    assert {top["token"] for top in entry["top_logprobs"]} == {"positive", "negative"}
    assert sum(math.exp(top["logprob"]) for top in entry["top_logprobs"]) == pytest.approx(1.0)
    assert math.exp(entry["logprob"]) > 0.5
    # the whole distribution, from the same labeling call that gave the label and its confidence
    text = "a tedious , joyless mess that wastes its cast ."
    label, confidence = teacher.label_vote_scored(0, text)
    distribution = teacher.label_distribution(0, text)
    assert set(distribution) == {"positive", "negative"} and sum(distribution.values()) == pytest.approx(1.0)
    assert max(distribution, key=distribution.get) == label and distribution[label] == pytest.approx(confidence)


@pytest.mark.slow
def test_real_model_writes_a_typed_list(real_lm):
    import dspy

    class NameGenres(dspy.Signature):
        """Name movie genres, one or two words each."""

        n: int = dspy.InputField()
        texts: list[str] = dspy.OutputField()

    out = dspy.Predict(NameGenres)(n=3)
    assert isinstance(out.texts, list) and out.texts and all(isinstance(t, str) and t for t in out.texts)


@pytest.mark.slow
def test_real_model_samples_differ_across_calls(real_lm):
    """A fresh seed per call: the same prompt at temperature 0.8 does not repeat itself (six draws: three short titles
    sometimes coincided)."""
    import dspy

    class Invent(dspy.Signature):
        """Invent a name for a new fantasy novel."""

        genre: str = dspy.InputField()
        title: str = dspy.OutputField()

    titles = {dspy.Predict(Invent)(genre="fantasy").title for _ in range(6)}
    assert len(titles) > 1


@pytest.mark.slow
def test_real_model_too_long_prompt_is_a_context_length_error(real_lm):
    from dspy.lm15 import Config, ContextLengthError, Message, Request

    engine = real_lm.engine
    request = Request(model=local.MODEL_NAME, messages=(Message.user("word " * 6000),), config=Config(max_tokens=8))
    with pytest.raises(ContextLengthError):
        engine.complete(request)


@pytest.mark.slow
def test_real_scoring_reuses_the_cached_prefix_and_matches_a_fresh_context():
    """Label scoring on the REAL model: names that share first tokens (trec's ABBR/ENTY-like splits, and a
    name that is a prefix of another) are scored through their branching points, the probabilities sum
    to one, and a second prompt that shares the first one's beginning reads only what differs and gives
    the answer and (within llama.cpp's batching noise) the probabilities a context reading it from
    scratch gives."""
    import llama_cpp

    from evokd.teacher.llama_scoring import choice_logprobs, prompt_tokens

    def fresh():
        return llama_cpp.Llama(model_path=str(local.ensure_model()), n_ctx=1024, n_threads=local.default_threads(),
                               verbose=False)

    choices = ["ABBR", "ABC", "AB", "HUM", "LOC"]  # ABBR and ABC branch after "AB"; AB ends where they go on
    system = {"role": "system", "content": "Answer with one of: " + ", ".join(choices) + "."}
    first = [system, {"role": "user", "content": "Which one is an abbreviation? Text: What does NASA stand for?"}]
    second = [system, {"role": "user", "content": "Which one is an abbreviation? Text: Who wrote Hamlet?"}]
    warm, cold = fresh(), fresh()
    try:
        scores, reused, evaluated = choice_logprobs(warm, prompt_tokens(warm, first), choices)
        assert reused == 0 and sum(math.exp(v) for v in scores.values()) == pytest.approx(1.0, abs=1e-6)
        tokens = prompt_tokens(warm, second)
        again, reused, evaluated = choice_logprobs(warm, tokens, choices)
        assert reused > len(tokens) // 2 and evaluated < len(tokens) - reused + 8  # the shared beginning was kept
        scratch, reused_cold, _ = choice_logprobs(cold, tokens, choices)
        assert reused_cold == 0
        # llama.cpp's numbers depend a little on how the tokens were batched (measured: a few hundredths of a
        # probability), so the check is on probabilities and the answer, not on bits
        assert max(again, key=again.get) == max(scratch, key=scratch.get)
        assert {c: math.exp(v) for c, v in again.items()} == pytest.approx(
            {c: math.exp(v) for c, v in scratch.items()}, abs=0.05)
    finally:
        warm.close()
        cold.close()


@pytest.mark.slow
def test_real_writer_keeps_the_grammar_while_checking_one_token_at_a_time():
    """The grammar-last writer on the REAL model: asked for a poem but held to a schema of one integer, it writes
    exactly that JSON; the second call on the same prompt reads none of it again."""
    import json as _json

    import llama_cpp

    from evokd.teacher.llama_decoding import grammar_for, write
    from evokd.teacher.llama_scoring import prompt_tokens

    llama = llama_cpp.Llama(model_path=str(local.ensure_model()), n_ctx=1024, n_threads=local.default_threads(),
                            verbose=False)
    try:
        tokens = prompt_tokens(llama, [{"role": "user", "content": "Write a long poem about the sea."}])
        grammar = grammar_for({"type": "json_object", "schema": {
            "type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}})
        out = write(llama, tokens, grammar=grammar, max_tokens=40, temperature=0.8, top_p=0.95, seed=3)
        assert out.finish_reason == "stop" and set(_json.loads(out.text)) == {"count"}
        assert isinstance(_json.loads(out.text)["count"], int) and out.reused == 0
        again = write(llama, tokens, grammar=grammar, max_tokens=40, temperature=0.0, top_p=0.95, seed=3)
        assert again.reused == len(tokens) - 1 and again.evaluated == 1
        free = write(llama, tokens, grammar=None, max_tokens=12, temperature=0.8, top_p=0.95, seed=3)
        assert free.completion_tokens == 12 and free.finish_reason == "length"  # a poem, cut at max_tokens
    finally:
        llama.close()
