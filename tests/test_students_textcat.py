"""SpacyTextcatStudent on real SST-2 / TREC slices: training, saving as pipeline + wheel (installed
offline into a throwaway dir), reload parity, the spaCy runtime behind `evokd predict/eval`, bad inputs."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import data_file, data_rows
from evokd.cli import main
from evokd.runtime import SpacyTextcatRuntime, StudentLoadError, load_student
from evokd.students import STUDENTS, SpacyTextcatStudent
from evokd.students.spacy_textcat import load_runtime

ROOT = Path(__file__).resolve().parents[1]


def read(dataset: str, split: str, limit: int) -> tuple[list[str], list[str]]:
    rows = data_rows(dataset, split, limit=limit)
    return [r["text"] for r in rows], [r["label"] for r in rows]


@pytest.fixture(scope="module")
def trec():
    return read("trec", "train", 1000), read("trec", "test", 200)


@pytest.fixture(scope="module")
def student(trec):
    (texts, labels), _ = trec
    return SpacyTextcatStudent().fit(texts, labels)


@pytest.fixture(scope="module")
def saved(student, trec, tmp_path_factory):
    _, (test_texts, _) = trec
    out = tmp_path_factory.mktemp("textcat")
    report = student.save(out, test_texts)
    return out, report


def test_learns_trec_question_types(student, trec):
    _, (texts, gold) = trec
    assert student.labels_ == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    accuracy = np.mean([p == g for p, g in zip(student.predict(texts), gold)])
    assert accuracy > 0.6, accuracy  # 900 questions (100 held out for early stopping): ~0.75; chance ~0.2
    proba = student.predict_proba(texts[:20])
    assert proba.shape == (20, 6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)  # exclusive classes: a softmax
    assert student.stop_reason_ in ("patience", "max_epochs") and student.history_[-1]["dev_macro_f1"] >= 0


def test_save_writes_pipeline_wheel_and_meta(saved, student):
    out, report = saved
    assert report["label_agreement"] == 1.0 and report["max_abs_diff"] == 0.0
    meta = json.loads((out / "student.json").read_text())
    assert meta["student"] == "spacy-textcat" and meta["kind"] == "classification" and meta["runtime"] == "spacy"
    assert meta["pipeline"] == "pipeline" and meta["package"] == "en_evokd_spacy_textcat"
    assert json.loads((out / "labels.json").read_text()) == student.labels_
    assert not (out / "model.onnx").exists()
    with zipfile.ZipFile(out / meta["wheel"]) as zf:
        inner = next(n for n in zf.namelist() if n.endswith("/meta.json") and "evokd_spacy_textcat-0.1.0" in n)
        assert json.loads(zf.read(inner))["pipeline"] == ["textcat"]


def test_wheel_installs_offline_and_predicts_the_same(saved, student, trec, tmp_path):
    out, _ = saved
    _, (texts, _) = trec
    meta = json.loads((out / "student.json").read_text())
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile", "--quiet",
                    "--target", str(tmp_path / "site"), str(out / meta["wheel"])],
                   check=True, env=env, capture_output=True, timeout=120)
    script = ("import json, sys, spacy\nnlp = spacy.load('en_evokd_spacy_textcat')\n"
              "print(json.dumps([max(d.cats, key=d.cats.get) for d in nlp.pipe(json.loads(sys.stdin.read()))]))\n")
    proc = subprocess.run([sys.executable, "-c", script], input=json.dumps(texts), capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(tmp_path / "site")}, cwd=tmp_path, check=True, timeout=120)
    assert json.loads(proc.stdout) == student.predict(texts)


def test_runtime_and_cli_predict_eval(saved, student, trec):
    out, _ = saved
    _, (texts, gold) = trec
    runtime = load_student(out)
    assert isinstance(runtime, SpacyTextcatRuntime)
    assert [r["label"] for r in runtime.predict(texts)] == student.predict(texts)
    np.testing.assert_allclose(runtime.predict_proba(texts), student.predict_proba(texts), atol=1e-6)
    runner = CliRunner()
    result = runner.invoke(main, ["predict", str(out), "What is the capital of France ?", "Who wrote Hamlet ?"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [r["label"] for r in lines] == student.predict(["What is the capital of France ?", "Who wrote Hamlet ?"])
    result = runner.invoke(main, ["eval", str(out), "--data", str(data_file("trec", "test"))])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 500 and report["accuracy"] > 0.6


def test_distill_writes_card_that_names_the_spacy_runtime(tmp_path):
    seeds = ROOT / "datasets" / "sst2" / "seeds.jsonl"
    out = tmp_path / "s"
    result = CliRunner().invoke(main, ["distill", str(seeds), "--task", str(ROOT / "datasets" / "sst2" / "task.yaml"),
                                       "--student", "spacy-textcat", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    card = (out / "MODEL_CARD.md").read_text()
    assert "needs the spaCy runtime, not onnxruntime" in card and "Runtime requirements: `spacy`" in card
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["runtime"] == "spacy" and metrics["runtime_requirements"] == ["spacy"]
    assert metrics["eval"]["n"] == 872 and metrics["latency"]["runtime"] == "spaCy"
    assert sorted(p.name for p in out.iterdir()) == [
        "MODEL_CARD.md", "en_evokd_spacy_textcat-0.1.0-py3-none-any.whl", "labels.json", "metrics.json", "pipeline",
        "student.json"]


def test_quantize_is_refused_for_spacy(tmp_path):
    seeds = ROOT / "datasets" / "sst2" / "seeds.jsonl"
    result = CliRunner().invoke(main, ["distill", str(seeds), "--task", str(ROOT / "datasets" / "sst2" / "task.yaml"),
                                       "--student", "spacy-textcat", "--quantize", "int8", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert result.output.strip() == "evokd: error: --quantize int8 applies to ONNX students; spacy-textcat runs in spaCy"
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("architecture, registered", [
    ("ensemble", "spacy.TextCatEnsemble.v2"), ("bow", "spacy.TextCatBOW.v3"), ("cnn", "spacy.TextCatReduce.v1")])
def test_architectures(architecture, registered):
    texts, labels = read("sst2", "train", 400)
    student = SpacyTextcatStudent(architecture=architecture, max_epochs=2, min_updates=0).fit(texts, labels)
    model = student.nlp_.config["components"]["textcat"]["model"]
    assert model["@architectures"] == registered and student.nlp_.pipe_names == ["textcat"]
    assert len(student.history_) == 2
    proba = student.predict_proba(texts[:50])
    assert proba.shape == (50, 2) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "params, message",
    [({"architecture": "bert"}, "architecture to be one of ensemble, bow, cnn, got 'bert'"),
     ({"max_epochs": 0}, "max_epochs to be a positive integer"),
     ({"dropout": 1.5}, "0 <= dropout < 1")],
)
def test_bad_params(params, message):
    with pytest.raises(ValueError, match=message):
        SpacyTextcatStudent(**params).fit(["good film", "bad film"], ["pos", "neg"])


def test_no_onnx_export_and_registry(student, tmp_path):
    assert STUDENTS["spacy-textcat"] is SpacyTextcatStudent
    with pytest.raises(NotImplementedError, match="cannot be exported to ONNX"):
        student.export_onnx(tmp_path / "model.onnx", ["a question ?"])


def test_load_runtime_errors(saved, tmp_path):
    out, _ = saved
    meta = json.loads((out / "student.json").read_text())
    with pytest.raises(StudentLoadError, match="expected a \"pipeline\""):
        load_runtime(out, {**meta, "pipeline": None})
    with pytest.raises(StudentLoadError, match="not a spaCy pipeline directory"):
        load_runtime(out, {**meta, "pipeline": "missing"})
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "labels.json").write_text('["A", "B"]')
    with pytest.raises(StudentLoadError, match=r"labels\.json: expected the pipeline's labels"):
        load_student(broken)
    (broken / "labels.json").write_text(json.dumps(meta["labels"]))
    (broken / "pipeline" / "textcat" / "model").write_bytes(b"not a model")
    with pytest.raises(StudentLoadError, match="expected a spaCy pipeline spacy.load can read") as info:
        load_student(broken)
    assert "\n" not in str(info.value)
