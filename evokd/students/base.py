"""The student protocol: scikit-learn-style verbs plus ONNX export with a parity check."""

import inspect
import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

import evokd
from evokd import runtime

PARITY_ATOL = 1e-4
SINGLE_CHECKS = 50  # check texts also run one per call in the parity check


class ParityError(RuntimeError):
    """The exported ONNX graph does not reproduce the framework model's predictions."""


def _check_texts(texts, what: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise ValueError(f"expected {what} to be a list of strings, got a single str")
    try:
        texts = list(texts)
    except TypeError:
        raise ValueError(
            f"expected {what} to be a list of strings, got {type(texts).__name__}"
        ) from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(
                f"expected {what} to be a list of strings, got {type(text).__name__} "
                f"at index {i}: {text!r}"
            )
    return texts


def _check_label_texts(label_texts, labels: list[str]) -> dict[str, str]:
    if label_texts is None:
        return {}
    if not isinstance(label_texts, dict):
        raise ValueError(f"expected label_texts to be a mapping of label to text, got {type(label_texts).__name__}")
    for label, text in label_texts.items():
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"expected label_texts[{label!r}] to be a non-empty string, got {text!r}")
    return {label: label_texts[label].strip() for label in labels if label in label_texts}


class Student(ABC):
    """A small classifier trained on teacher-labelled texts and shipped as ONNX.

    Subclasses set `name`, take their hyper-parameters as keyword arguments of
    `__init__` (stored unchanged, as in scikit-learn) and implement `_fit`,
    `_predict_proba` and `_to_onnx`.
    """

    name: str = ""
    kind: str = "classification"
    input: str = "text"  # how the runtime feeds the graph (evokd.runtime.INPUT_ENCODERS)
    output_names: tuple[str, ...] = ("label", "probabilities")

    # -- parameters ---------------------------------------------------------------
    def get_params(self) -> dict:
        names = [
            p.name
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        return {n: getattr(self, n) for n in names}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # -- training and prediction --------------------------------------------------
    def fit(self, texts: list[str], labels: list[str], label_texts: dict[str, str] | None = None) -> "Student":
        """Fit on labelled texts. `label_texts` (label -> its description, e.g. a task's
        `label_texts`) is there for students that can learn from what a label means (minilm);
        the others ignore it. Only the labels present in `labels` are kept."""
        texts = _check_texts(texts)
        labels = _check_texts(labels, what="labels")
        if not texts:
            raise ValueError("expected at least 2 labelled texts to fit on, got 0")
        if len(texts) != len(labels):
            raise ValueError(
                f"expected one label per text, got {len(texts)} texts and {len(labels)} labels"
            )
        distinct = sorted(set(labels))
        if len(distinct) < 2:
            raise ValueError(
                f"expected at least 2 distinct labels, got {len(distinct)}: {distinct}"
            )
        self.labels_ = distinct
        self.label_texts_ = _check_label_texts(label_texts, distinct)
        self._fit(texts, labels)
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities, one row per text, columns in `self.labels_` order."""
        self._check_fitted()
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, len(self.labels_)))
        return self._predict_proba(texts)

    def predict(self, texts: list[str]) -> list[str]:
        proba = self.predict_proba(texts)
        return [self.labels_[j] for j in proba.argmax(axis=1)]

    def _check_fitted(self) -> None:
        if not hasattr(self, "labels_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(texts, labels) first")

    # -- export -------------------------------------------------------------------
    def export_onnx(self, path, check_texts: list[str]) -> dict:
        """Write the ONNX graph to `path`, then check it in onnxruntime against `check_texts`.

        Raises ParityError unless every label agrees and every probability is within
        PARITY_ATOL of the framework's.
        """
        self._check_fitted()
        check_texts = _check_texts(check_texts, what="check_texts")
        if not check_texts:
            raise ValueError("expected at least 1 text in check_texts to verify the export, got 0")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        model = self._to_onnx()
        self.onnx_opset_ = next(
            (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None
        )
        path.write_bytes(model.SerializeToString())
        self._write_runtime_files(path.parent)

        session = runtime.RuntimeStudent(path, self.labels_, input_kind=self.input)
        onnx_proba = session.predict_proba(check_texts).astype(np.float64)
        # one text per run too, as a CLI call makes it: batching or padding must not change a result
        n_single = min(len(check_texts), SINGLE_CHECKS)
        single_proba = np.concatenate([session.predict_proba([t]) for t in check_texts[:n_single]]).astype(np.float64)
        ref_proba = self.predict_proba(check_texts)
        ref_labels = ref_proba.argmax(axis=1)

        agree = [bool(a) for a in onnx_proba.argmax(axis=1) == ref_labels]
        agree[:n_single] = [a and bool(b) for a, b in zip(agree, single_proba.argmax(axis=1) == ref_labels[:n_single])]
        max_abs_diff = float(max(np.max(np.abs(onnx_proba - ref_proba)), np.max(np.abs(single_proba - ref_proba[:n_single]))))
        report = {
            "n_checked": len(check_texts),
            "n_checked_one_at_a_time": n_single,
            "max_abs_diff": max_abs_diff,
            "label_agreement": sum(agree) / len(agree),
        }
        if not all(agree) or not max_abs_diff <= PARITY_ATOL:
            first = check_texts[agree.index(False)] if not all(agree) else None
            raise ParityError(
                f"ONNX export of {self.name} differs from {type(self).__name__}: "
                f"label agreement {report['label_agreement']:.4f} on {len(check_texts)} texts, "
                f"max |Δp| {max_abs_diff:.2e} (limit {PARITY_ATOL:g})"
                + (f", first disagreement on {first[:60]!r}" if first is not None else "")
            )
        return report

    def save(self, out_dir, check_texts: list[str]) -> dict:
        """Write model.onnx (parity-checked), student.json and labels.json (and whatever
        `_write_runtime_files` adds); return the parity report."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        report = self.export_onnx(out_dir / runtime.MODEL_FILE, check_texts)
        meta = {
            "student": self.name,
            "kind": self.kind,
            "params": self.get_params(),
            "runtime": "onnxruntime",
            "input": self.input,
            "output_names": list(self.output_names),
            "evokd_version": evokd.__version__,
            "onnx_opset": self.onnx_opset_,
            "labels": list(self.labels_),
            **self._meta_extra(),
            "parity": report,
        }
        (out_dir / runtime.META_FILE).write_text(
            json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (out_dir / runtime.LABELS_FILE).write_text(
            json.dumps(list(self.labels_), ensure_ascii=False) + "\n", encoding="utf-8"
        )
        return report

    def _write_runtime_files(self, out_dir: Path) -> None:
        """Files besides model.onnx that the runtime needs to feed the graph (e.g. a tokenizer)."""

    def _meta_extra(self) -> dict:
        """Student-specific entries of student.json."""
        return {}

    # -- what each student implements ---------------------------------------------
    @abstractmethod
    def _fit(self, texts: list[str], labels: list[str]) -> None: ...

    @abstractmethod
    def _predict_proba(self, texts: list[str]) -> np.ndarray: ...

    @abstractmethod
    def _to_onnx(self):
        """Return an onnx.ModelProto whose input follows `self.input` and whose outputs are
        `self.output_names`, probabilities in `self.labels_` column order."""


QUANTIZED_SCHEME = "int8: onnxruntime quantize_dynamic, per-channel, signed int8 weights (QInt8)"


def quantize_int8(model_path, out_path) -> None:
    """Dynamic int8 quantisation of an ONNX graph's MatMul/Gather weights, per output channel.

    Activations stay float and are quantised on the fly, so no calibration data is needed; the
    caller checks accuracy against the float graph, since the loss depends on the model.
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a "consider pre-processing" warning per call
    try:
        quantize_dynamic(str(model_path), str(out_path), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
