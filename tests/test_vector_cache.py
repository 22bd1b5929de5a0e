"""A run keeps its eval rows' frozen-encoder vectors in RUN/vectors/ (evokd.vector_cache), and `distill`
and `compare` read them instead of encoding the same rows again. Real MiniLM, real runs (the loop,
DuckDB, the minilm student, onnxruntime); the teacher is conftest's scripted TEST DOUBLE. Encoding
is watched by wrapping the real `EncoderSpec.encode`, which still runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from evokd.cli import main
from evokd.students import make_student, minilm
from evokd.students.encoders import MINILM, MPNET, EncoderSpec
from evokd.vector_cache import VECTORS_DIR, frozen_encoder, remember_vectors, vectors_file

TEXTS = ["a gorgeous, witty film", "a dull, lifeless mess", "the plot is thin but the acting saves it"]


@pytest.fixture
def encoded(monkeypatch) -> list[str]:
    """The texts the encoders really encode from now on, with an empty memo (the real encoder runs)."""
    seen, real = [], EncoderSpec.encode

    def watching(self, texts, batch_size, model=None):
        seen.extend(texts)
        return real(self, texts, batch_size, model)

    monkeypatch.setattr(EncoderSpec, "encode", watching)
    monkeypatch.setattr(minilm, "_frozen_memo", {})
    return seen


def test_vectors_are_encoded_once_then_read_from_the_folder(tmp_path, encoded, monkeypatch):
    first = remember_vectors(tmp_path, TEXTS, MINILM)
    assert encoded == TEXTS and vectors_file(tmp_path, "minilm", TEXTS).is_file()
    monkeypatch.setattr(minilm, "_frozen_memo", {})  # a new process: nothing in memory
    again = remember_vectors(tmp_path, TEXTS, MINILM)
    assert encoded == TEXTS  # nothing encoded the second time
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(minilm.frozen_vectors(TEXTS[:1]), first[:1])  # the students' memo holds them
    assert encoded == TEXTS


def test_other_texts_and_a_damaged_file_are_encoded_again(tmp_path, encoded, monkeypatch):
    remember_vectors(tmp_path, TEXTS, MINILM)
    path = vectors_file(tmp_path, "minilm", TEXTS)
    assert vectors_file(tmp_path, "minilm", TEXTS[::-1]) != path and vectors_file(tmp_path, "mpnet", TEXTS) != path
    path.write_bytes(path.read_bytes()[:100])  # truncated
    monkeypatch.setattr(minilm, "_frozen_memo", {})
    vectors = remember_vectors(tmp_path, TEXTS, MINILM)
    assert encoded == TEXTS * 2 and np.load(path).shape == vectors.shape == (3, MINILM.dim)


def test_only_students_that_read_frozen_vectors_use_the_cache():
    assert frozen_encoder(make_student("minilm")) is MINILM and frozen_encoder(make_student("mpnet")) is MPNET
    assert frozen_encoder(make_student("minilm-tuned")) is None  # its eval predictions come from its tuned copy
    assert frozen_encoder(make_student("minilm", fine_tune="setfit")) is None
    assert frozen_encoder(make_student("tfidf")) is None


def test_distill_and_compare_read_the_eval_vectors_the_run_saved(sst2_task, scripted_teacher, tmp_path, encoded,
                                                                 monkeypatch):
    run, student = tmp_path / "run", tmp_path / "student"
    eval_texts = [json.loads(x)["text"] for x in (sst2_task.parent / "eval.jsonl").read_text().splitlines()]
    result = CliRunner().invoke(main, ["generate", str(sst2_task), "--teacher", scripted_teacher, "--rounds", "1",
                                       "--per-round", "6", "--student", "minilm", "--out", str(run), "--quiet",
                                       "--no-eval-guard"])
    assert result.exit_code == 0, result.output
    assert set(eval_texts) <= set(encoded)
    assert [p.name for p in (run / VECTORS_DIR).iterdir()] == [vectors_file(run / VECTORS_DIR, "minilm", eval_texts).name]

    encoded.clear()
    monkeypatch.setattr(minilm, "_frozen_memo", {})  # as a new process would start
    result = CliRunner().invoke(main, ["distill", str(run), "--out", str(student)])
    assert result.exit_code == 0, result.output
    assert encoded and not set(encoded) & set(eval_texts)  # the training rows only
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["student"] == "minilm" and metrics["parity"]["label_agreement"] == 1.0

    encoded.clear()
    monkeypatch.setattr(minilm, "_frozen_memo", {})
    result = CliRunner().invoke(main, ["compare", str(run), "--teacher-n", "0", "--json"])
    assert result.exit_code == 0, result.output
    assert not set(encoded) & set(eval_texts)
    out = json.loads(result.stdout)
    rounds = [json.loads(x) for x in (run / "rounds.jsonl").read_text().splitlines()]
    # the vectors read back give the scores the run measured with the vectors it encoded
    assert out["final"]["eval"]["accuracy"] == pytest.approx(rounds[-1]["eval_accuracy"])
    assert out["seed_only"]["eval"]["accuracy"] == pytest.approx(rounds[0]["eval_accuracy"])
    assert metrics["eval"]["accuracy"] == pytest.approx(rounds[-1]["eval_accuracy"])


def test_a_folder_that_cannot_be_written_still_gives_the_vectors(tmp_path, encoded):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")  # its "vectors/" cannot be made, even by root
    vectors = remember_vectors(blocked / VECTORS_DIR, TEXTS, MINILM)
    assert vectors.shape == (3, MINILM.dim) and encoded == TEXTS and blocked.read_text() == "not a folder"
