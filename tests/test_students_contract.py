"""The student contract and its layering: every student is a `Student` with explicit capabilities,
the runtime never imports the students, one input check for both."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import evokd
from evokd import runtime
from evokd.students import STUDENTS, ClassifierStudent, NerStudent, Student

PACKAGE = Path(evokd.__file__).parent


def test_every_student_is_a_student_with_explicit_capabilities():
    for name, cls in STUDENTS.items():
        assert issubclass(cls, Student) and cls.name == name
        assert issubclass(cls, NerStudent if cls.kind == "ner" else ClassifierStudent)
        assert cls.runtime in (runtime.ONNX_RUNTIME, runtime.SPACY_RUNTIME)
        assert isinstance(cls.gives_confidence, bool)
        assert callable(getattr(cls, "confidence", None)) == cls.gives_confidence, name
    assert [n for n, cls in STUDENTS.items() if cls.gives_confidence] == ["tagger"]
    for cls in STUDENTS.values():  # hyper-parameters only: nothing is fitted yet
        with pytest.raises(RuntimeError, match="is not fitted"):
            cls().predict(["a text"])


def test_a_student_claiming_confidence_must_give_it():
    with pytest.raises(TypeError, match="gives_confidence"):
        type("Broken", (NerStudent,), {"gives_confidence": True})


def test_one_input_check_for_students_and_runtimes():
    assert runtime.check_texts(("a", "b")) == ["a", "b"]
    for bad, message in (("a text", "got a single str"), (["ok", 1], "got int at index 1"), (3, "got int")):
        with pytest.raises(TypeError, match=message):
            runtime.check_texts(bad)
        with pytest.raises(ValueError, match=message):  # what students have always raised
            runtime.check_texts(bad)
    with pytest.raises(ValueError, match="expected labels to be a list of strings"):
        runtime.check_texts(["x", None], what="labels")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # imports inside functions too
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_the_runtime_never_imports_the_students():
    for path in sorted((PACKAGE / "runtime").glob("*.py")):
        assert not [m for m in _imports(path) if m.startswith("evokd.students")], path.name


def test_importing_the_runtime_loads_no_training_library():
    script = ("import sys, evokd.runtime; heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
              "('torch', 'sklearn', 'spacy', 'sentence_transformers', 'onnx') or m.startswith('evokd.students')); "
              "print(heavy)")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
