"""The onnxruntime-only deployment runtime: loading, predicting, clear load errors, import isolation."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import data_rows
from evokd.runtime import RuntimeStudent, StudentLoadError, load_student
from evokd.students import TfidfStudent



def read_texts_labels(dataset, split, limit):
    rows = data_rows(dataset, split, limit=limit)
    return [r["text"] for r in rows], [r["label"] for r in rows]


@pytest.fixture(scope="module")
def fitted():
    texts, labels = read_texts_labels("sst2", "train", 2000)
    return TfidfStudent().fit(texts, labels)


@pytest.fixture(scope="module")
def dev_texts():
    return read_texts_labels("sst2", "dev", 200)[0]


@pytest.fixture(scope="module")
def student_dir(fitted, dev_texts, tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    fitted.save(out, dev_texts)
    return out


def test_load_and_predict_matches_sklearn(fitted, student_dir, dev_texts):
    runtime = load_student(student_dir)
    assert runtime.labels == ["negative", "positive"]
    texts = dev_texts + ["!!!", "", "Café naïve"]
    results = runtime.predict(texts)
    assert [r["label"] for r in results] == fitted.predict(texts)
    ref = fitted.predict_proba(texts)
    np.testing.assert_allclose(runtime.predict_proba(texts), ref, atol=1e-4)
    scores = np.array([r["score"] for r in results])
    np.testing.assert_allclose(scores, ref.max(axis=1), atol=1e-4)
    assert all(isinstance(r["score"], float) for r in results)
    # batch and one-at-a-time agree (padding in the ONNX tokenizer must not leak)
    single = [runtime.predict([t])[0]["label"] for t in texts[:30]]
    assert single == [r["label"] for r in results[:30]]


def test_predict_inputs(student_dir):
    runtime = load_student(student_dir)
    assert runtime.predict([]) == []
    with pytest.raises(TypeError, match="single str"):
        runtime.predict("a text")
    with pytest.raises(TypeError, match="got int at index 1"):
        runtime.predict(["ok", 1])


def copy_student(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("model.onnx", "student.json", "labels.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


@pytest.mark.parametrize(
    "damage, pattern",
    [
        (lambda d: (d / "model.onnx").unlink(), r"model\.onnx: file not found"),
        (lambda d: (d / "student.json").unlink(), r"student\.json: file not found"),
        (lambda d: (d / "labels.json").write_text("[not json"), r"labels\.json: not valid JSON"),
        (lambda d: (d / "labels.json").write_text('["only-one"]'), r"labels\.json: expected a JSON list of at least 2"),
        (lambda d: (d / "student.json").write_text("{}"), r"student\.json: expected a JSON object"),
        (lambda d: (d / "model.onnx").write_bytes(b"not an onnx graph"), r"model\.onnx: expected an ONNX model"),
        (
            lambda d: (d / "student.json").write_text(json.dumps({"student": "x", "kind": "classification", "input": "audio"})),
            r"student\.json: unknown input 'audio'; expected one of: text, token_ids",
        ),
        (
            lambda d: (d / "student.json").write_text(json.dumps({"student": "x", "kind": "ner", "input": "text"})),
            r"student\.json: unknown kind 'ner'",
        ),
    ],
)
def test_broken_student_dir_gives_one_line_load_error(student_dir, tmp_path, damage, pattern):
    broken = copy_student(student_dir, tmp_path / "broken")
    damage(broken)
    with pytest.raises(StudentLoadError, match=pattern) as info:
        load_student(broken)
    assert "\n" not in str(info.value)


def test_missing_dir(tmp_path):
    with pytest.raises(StudentLoadError, match="not a directory"):
        load_student(tmp_path / "nope")


def test_unknown_input_kind_in_constructor(student_dir):
    with pytest.raises(StudentLoadError, match="unknown student input"):
        RuntimeStudent(student_dir / "model.onnx", ["a", "b"], input_kind="audio")


def test_runtime_imports_only_onnxruntime_and_numpy(student_dir):
    script = textwrap.dedent(
        f"""
        import sys
        BLOCKED = ("sklearn", "skl2onnx", "torch", "scipy", "onnx", "evokd.students")
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name in BLOCKED or name.startswith(tuple(b + "." for b in BLOCKED)):
                    raise ImportError("blocked import: " + name)
        sys.meta_path.insert(0, Block())
        from evokd.runtime import load_student
        out = load_student({str(student_dir)!r}).predict(["a great , moving film", "dull and tedious"])
        assert [r["label"] for r in out] == ["positive", "negative"], out
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED or m.startswith("evokd.students"))
        assert not loaded, loaded
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
