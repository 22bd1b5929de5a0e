"""Deployment runtime: run a saved student with onnxruntime alone.

This module is what `evokd predict` and shipped students depend on, so it imports only
json, pathlib, numpy and onnxruntime — never scikit-learn, torch or `evokd.students`.
A student directory holds `model.onnx`, `student.json` (how to feed and read the graph)
and `labels.json` (labels in probability-column order).
"""

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402

MODEL_FILE = "model.onnx"
META_FILE = "student.json"
LABELS_FILE = "labels.json"
PROBABILITIES_OUTPUT = "probabilities"


class StudentLoadError(Exception):
    """A student directory is missing a file or holds one that is not what evokd wrote."""


def _encode_text(texts: list[str]) -> np.ndarray:
    """Raw strings, one per row: the graph does its own tokenisation (TF-IDF students)."""
    return np.array(texts, dtype=object).reshape(-1, 1)


# How each kind of graph input is built from texts, keyed by student.json's "input".
# Later students (e.g. "token_ids" for a MiniLM graph) add an encoder here.
INPUT_ENCODERS = {"text": _encode_text}
SUPPORTED_KINDS = ("classification",)


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("expected a list of strings, got a single str; wrap it in a list")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"expected a list of strings, got {type(text).__name__} at index {i}")
    return texts


def make_session(model_path, intra_op_num_threads: int = 1) -> onnxruntime.InferenceSession:
    """One CPU session; a single thread is fastest for the single-sentence calls a CLI makes."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = intra_op_num_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


class RuntimeStudent:
    """A classification student loaded into an onnxruntime session."""

    def __init__(
        self,
        model_path,
        labels: list[str],
        input_kind: str = "text",
        meta: dict | None = None,
        intra_op_num_threads: int = 1,
    ):
        if input_kind not in INPUT_ENCODERS:
            raise StudentLoadError(
                f"unknown student input {input_kind!r}; expected one of: {', '.join(INPUT_ENCODERS)}"
            )
        self.labels = list(labels)
        self.meta = dict(meta or {})
        self._encode = INPUT_ENCODERS[input_kind]
        try:
            self.session = make_session(model_path, intra_op_num_threads)
        except Exception as exc:  # onnxruntime raises several unrelated types
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StudentLoadError(
                f"{model_path}: expected an ONNX model onnxruntime can load ({first_line})"
            ) from exc
        self._input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        if PROBABILITIES_OUTPUT not in outputs:
            raise StudentLoadError(
                f"{model_path}: expected a graph output named {PROBABILITIES_OUTPUT!r}, "
                f"found {outputs}"
            )

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities, one row per text, columns in `self.labels` order."""
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        (proba,) = self.session.run(
            [PROBABILITIES_OUTPUT], {self._input_name: self._encode(texts)}
        )
        proba = np.asarray(proba)
        if proba.shape != (len(texts), len(self.labels)):
            raise RuntimeError(
                f"model returned probabilities of shape {proba.shape}, "
                f"expected {(len(texts), len(self.labels))}"
            )
        return proba

    def predict(self, texts: list[str]) -> list[dict]:
        """One {"label", "score"} per text; score is the probability of that label."""
        proba = self.predict_proba(texts)
        best = proba.argmax(axis=1)
        return [
            {"label": self.labels[j], "score": float(proba[i, j])} for i, j in enumerate(best)
        ]


def _read_json(path: Path, expected: str):
    if not path.is_file():
        raise StudentLoadError(f"{path}: file not found; expected {expected}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StudentLoadError(f"{path}: not valid JSON ({exc}); expected {expected}") from exc


def load_student(student_dir, intra_op_num_threads: int = 1) -> RuntimeStudent:
    """Load a student directory written by `Student.save` / `evokd distill`."""
    student_dir = Path(student_dir)
    if not student_dir.is_dir():
        raise StudentLoadError(
            f"{student_dir}: not a directory; expected a student directory with "
            f"{MODEL_FILE}, {META_FILE} and {LABELS_FILE}"
        )
    meta_path = student_dir / META_FILE
    meta = _read_json(meta_path, 'a JSON object with "student", "kind" and "input"')
    if not isinstance(meta, dict) or not all(k in meta for k in ("student", "kind", "input")):
        raise StudentLoadError(
            f'{meta_path}: expected a JSON object with "student", "kind" and "input", '
            f"got {json.dumps(meta)[:80]}"
        )
    if meta["kind"] not in SUPPORTED_KINDS:
        raise StudentLoadError(
            f"{meta_path}: unknown kind {meta['kind']!r}; expected one of: {', '.join(SUPPORTED_KINDS)}"
        )
    if meta["input"] not in INPUT_ENCODERS:
        raise StudentLoadError(
            f"{meta_path}: unknown input {meta['input']!r}; expected one of: {', '.join(INPUT_ENCODERS)}"
        )
    labels_path = student_dir / LABELS_FILE
    labels = _read_json(labels_path, "a JSON list of label strings")
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(isinstance(label, str) for label in labels)
    ):
        raise StudentLoadError(
            f"{labels_path}: expected a JSON list of at least 2 label strings, "
            f"got {json.dumps(labels)[:80]}"
        )
    model_path = student_dir / MODEL_FILE
    if not model_path.is_file():
        raise StudentLoadError(f"{model_path}: file not found; expected an ONNX model")
    return RuntimeStudent(model_path, labels, meta["input"], meta, intra_op_num_threads)
