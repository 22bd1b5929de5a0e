"""The student contract, and the templates the two kinds of students build on.

`Student` is what every student is: hyper-parameters as `__init__` keywords (`get_params`),
`fit`, `predict`, `save` (a folder `evokd.runtime.load_student` loads, checked against the
trained model), and `confidence` when its class says `gives_confidence`. `ClassifierStudent`
(tfidf, minilm, spacy-textcat) fits on labels and exports ONNX with a parity check; `NerStudent`
(tagger, spacy-ner) fits on character-span entities.
"""

import inspect
import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

import evokd
from evokd.runtime import LABELS_FILE, META_FILE, MODEL_FILE, ONNX_RUNTIME, RuntimeStudent
from evokd.runtime import check_texts as _check_texts  # the one input check (students and runtimes)

PARITY_ATOL = 1e-4
SINGLE_CHECKS = 50  # check texts also run one per call in the parity check


class ParityError(RuntimeError):
    """The exported ONNX graph does not reproduce the framework model's predictions."""


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
    """A small model trained on teacher-labelled texts and shipped as a folder the runtime loads.

    Subclasses set the class attributes below, take their hyper-parameters as keyword arguments
    of `__init__` (stored unchanged, as in scikit-learn) and implement `fit`, `predict` and
    `save`. A student whose `gives_confidence` is True also implements `confidence(texts)`: one
    number per text, higher when the student is surer (pool-uncertainty on NER ranks by it); the
    others have no `confidence` at all.
    """

    name: str = ""
    kind: str = "classification"  # what fit learns: "classification" (labels) or "ner" (entity spans)
    input: str = "text"  # how the runtime feeds the graph (evokd.runtime.INPUT_ENCODERS; "tokens": a tagger)
    runtime: str = ONNX_RUNTIME  # what runs the saved student: "onnxruntime" (model.onnx) or "spacy" (a pipeline)
    output_names: tuple[str, ...] = ("label", "probabilities")
    gives_confidence: bool = False  # True: the class implements confidence(texts) -> np.ndarray
    auto_min_rows: int = 0  # `--student auto` tries it only on at least this many training rows
    targets_name: str = "labels"  # what `fit` takes beside the texts, as errors name it
    _fitted_attribute: str = "labels_"  # set by fit; predict and save refuse to run without it
    # After `save`: the saved folder's own outputs on `check_texts`, in their order and in the form
    # its runtime's `predict` gives them, where the parity check ran the shipped graph on all of
    # them (ONNX classifiers); None where it did not. `evokd distill` scores eval rows from it
    # instead of running the same graph over them a second time.
    checked_outputs_: list[dict] | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.gives_confidence and not callable(getattr(cls, "confidence", None)):
            raise TypeError(f"{cls.__name__} says gives_confidence but has no confidence(texts) method")

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

    # -- the contract -------------------------------------------------------------
    @abstractmethod
    def fit(self, texts: list[str], targets: list, *args, **kwargs) -> "Student":
        """Train on texts and their targets: one label per text (classification) or one list of
        {"start", "end", "label"} character spans per text (NER)."""

    def fit_task(self, texts: list[str], targets: list, task) -> "Student":
        """Fit on a task's rows, with what the student learns from the task besides them (see subclasses)."""
        return self.fit(texts, targets)

    @abstractmethod
    def predict(self, texts: list[str]) -> list:
        """One prediction per text: a label (classification) or a list of entity spans (NER)."""

    @abstractmethod
    def save(self, out_dir, check_texts: list[str]) -> dict:
        """Write the student folder, load it back, require the same predictions on `check_texts`
        (ParityError otherwise) and return the parity report."""

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attribute):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(texts, {self.targets_name}) first")


class ClassifierStudent(Student):
    """A text classifier: the template tfidf, minilm and spacy-textcat follow.

    Subclasses implement `_fit`, `_predict_proba` and `_to_onnx`; `fit` checks the data,
    `predict` takes the most probable label, and `save` exports the ONNX graph and checks it in
    onnxruntime against the framework model (spacy-textcat, which spaCy runs, overrides `save`).
    """

    takes_sample_weight: bool = False  # True: fit accepts sample_weight (one weight per text)

    def fit_task(self, texts: list[str], targets: list, task, sample_weight=None) -> "ClassifierStudent":
        """Fit with the task's label descriptions (`TaskSpec.label_descriptions`), which minilm learns from
        (its label anchors); the other classifiers take and ignore them."""
        return self.fit(texts, targets, label_texts=task.label_descriptions, sample_weight=sample_weight)

    # -- training and prediction --------------------------------------------------
    def fit(self, texts: list[str], labels: list[str], label_texts: dict[str, str] | None = None,
            sample_weight=None) -> "ClassifierStudent":
        """Fit on labelled texts. `label_texts` (label -> its description, e.g. a task's
        `label_descriptions`) is there for students that can learn from what a label means (minilm);
        the others ignore it. Only the labels present in `labels` are kept. `sample_weight`: one
        number >= 0 per text (e.g. the teacher's confidence in its label), for the students whose
        `takes_sample_weight` is True; the others refuse it rather than ignore it."""
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
        weights = self._check_weights(sample_weight, len(texts))
        self.labels_ = distinct
        self.label_texts_ = _check_label_texts(label_texts, distinct)
        self._fit(texts, labels, weights)
        return self

    def _check_weights(self, sample_weight, n: int) -> np.ndarray | None:
        if sample_weight is None:
            return None
        if not self.takes_sample_weight:
            raise ValueError(f"the {self.name} student does not train with sample weights; expected sample_weight=None")
        weights = np.asarray(sample_weight, dtype=np.float64)
        if weights.shape != (n,):
            raise ValueError(f"expected one sample weight per text ({n}), got shape {weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not weights.sum() > 0:
            raise ValueError("expected sample weights to be finite numbers >= 0 that are not all 0")
        return weights

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities, one row per text, columns in `self.labels_` order."""
        self._check_fitted()
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, len(self.labels_)))
        return self._predict_proba(texts)

    def predict(self, texts: list[str]) -> list[str]:
        """The most probable label per text."""
        proba = self.predict_proba(texts)
        return [self.labels_[j] for j in proba.argmax(axis=1)]

    # -- export -------------------------------------------------------------------
    def export_onnx(self, path, check_texts: list[str]) -> dict:
        """Write the ONNX graph to `path`, then check it in onnxruntime against `check_texts`.

        Raises ParityError unless every label agrees and every probability is within
        PARITY_ATOL of the framework's. The batched check runs on as many threads as the student
        trains with (its `n_threads`; onnxruntime's default, every core, when it has none); the
        shipped folder's runtime itself defaults to one thread. Sets `checked_outputs_`.
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

        self.checked_outputs_ = None
        session = RuntimeStudent(path, self.labels_, input_kind=self.input,
                                 intra_op_num_threads=getattr(self, "n_threads", None) or 0)
        onnx_proba32 = session.predict_proba(check_texts)
        onnx_proba = onnx_proba32.astype(np.float64)
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
        best = onnx_proba32.argmax(axis=1)  # what RuntimeStudent.predict returns for the same rows
        self.checked_outputs_ = [{"label": self.labels_[j], "score": float(onnx_proba32[i, j])} for i, j in enumerate(best)]
        return report

    def save(self, out_dir, check_texts: list[str]) -> dict:
        """Write model.onnx (parity-checked), student.json and labels.json (and whatever
        `_write_runtime_files` adds); return the parity report."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        report = self.export_onnx(out_dir / MODEL_FILE, check_texts)
        meta = {
            "student": self.name,
            "kind": self.kind,
            "params": self.get_params(),
            "runtime": self.runtime,
            "input": self.input,
            "output_names": list(self.output_names),
            "evokd_version": evokd.__version__,
            "onnx_opset": self.onnx_opset_,
            "labels": list(self.labels_),
            **self._meta_extra(),
            "parity": report,
        }
        (out_dir / META_FILE).write_text(
            json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (out_dir / LABELS_FILE).write_text(
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
    def _fit(self, texts: list[str], labels: list[str], weights: np.ndarray | None) -> None:
        """Train on the checked rows; `weights` is None unless `takes_sample_weight` (one per text)."""

    @abstractmethod
    def _predict_proba(self, texts: list[str]) -> np.ndarray: ...

    @abstractmethod
    def _to_onnx(self):
        """Return an onnx.ModelProto whose input follows `self.input` and whose outputs are
        `self.output_names`, probabilities in `self.labels_` column order."""


def _check_entities(texts: list[str], entities) -> list[list[dict]]:
    if isinstance(entities, (str, dict)):
        raise ValueError(
            f"expected entities to be one list of spans per text, got a single {type(entities).__name__}"
        )
    try:
        entities = list(entities)
    except TypeError:
        raise ValueError(
            f"expected entities to be one list of spans per text, got {type(entities).__name__}"
        ) from None
    if len(entities) != len(texts):
        raise ValueError(
            f"expected one list of spans per text, got {len(texts)} texts and {len(entities)} entity lists"
        )
    out = []
    for i, (text, spans) in enumerate(zip(texts, entities)):
        if isinstance(spans, (str, dict)) or not isinstance(spans, (list, tuple)):
            raise ValueError(
                f"expected a list of spans for text {i}, got {type(spans).__name__}: {spans!r:.60}"
            )
        checked = []
        for j, span in enumerate(spans):
            where = f"text {i} span {j}"
            if not isinstance(span, dict) or not {"start", "end", "label"} <= set(span):
                raise ValueError(
                    f'{where}: expected a dict with "start", "end" and "label", got {span!r:.80}'
                )
            start, end, label = span["start"], span["end"], span["label"]
            if any(isinstance(v, bool) or not isinstance(v, int) for v in (start, end)):
                raise ValueError(f"{where}: expected integer start and end offsets, got {start!r}, {end!r}")
            if not 0 <= start < end <= len(text):
                raise ValueError(
                    f"{where}: expected 0 <= start < end <= {len(text)} (the text's length), "
                    f"got [{start}, {end})"
                )
            if not isinstance(label, str) or not label or label == "O" or any(c.isspace() for c in label):
                raise ValueError(f"{where}: expected an entity type such as 'PER', got {label!r}")
            checked.append({"start": start, "end": end, "label": label})
        out.append(checked)
    return out



class NerStudent(Student):
    """An entity recogniser: fit on character-span entities, predict spans: the template tagger and
    spacy-ner follow. Subclasses implement `_fit(texts, entities, validation)` (all checked;
    validation is (texts, entities) or None) and `_predict(texts)`, and set `_fitted_attribute`.
    """

    kind = "ner"
    targets_name = "entities"

    def fit(self, texts: list[str], entities: list[list[dict]], validation=None) -> "NerStudent":
        """Train on texts with character-span entities {"start", "end", "label"} (end exclusive);
        spans off token boundaries are widened to the tokens they touch. `validation` =
        (texts, entities) for early stopping."""
        texts = _check_texts(texts)
        entities = _check_entities(texts, entities)
        if not texts:
            raise ValueError("expected at least 1 text with entities to fit on, got 0")
        if validation is not None:
            if not isinstance(validation, (tuple, list)) or len(validation) != 2:
                raise ValueError("expected validation=(texts, entities), got " + type(validation).__name__)
            validation_texts = _check_texts(validation[0], what="validation texts")
            validation = (validation_texts, _check_entities(validation_texts, validation[1]))
        self._fit(texts, entities, validation)
        return self

    def predict(self, texts: list[str]) -> list[list[dict]]:
        """Entity spans {"start", "end", "label", "text"} per text, character offsets, end exclusive."""
        self._check_fitted()
        return self._predict(_check_texts(texts))

    @abstractmethod
    def _fit(self, texts: list[str], entities: list[list[dict]], validation: tuple | None) -> None: ...

    @abstractmethod
    def _predict(self, texts: list[str]) -> list[list[dict]]: ...


QUANTIZED_SCHEME = "int8: onnxruntime quantize_dynamic, per-channel, unsigned 8-bit weights (QUInt8)"


def quantize_int8(model_path, out_path) -> None:
    """Dynamic int8 quantisation of an ONNX graph's MatMul/Gather weights, per output channel.

    Activations stay float and are quantised on the fly, so no calibration data is needed; the
    caller checks accuracy against the float graph, since the loss depends on the model.

    Unsigned weights (uint8 activations x uint8 weights), not signed ones: on x86 CPUs with AVX2 but
    no VNNI, onnxruntime multiplies uint8 x int8 with an instruction whose 16-bit sums saturate, which
    onnxruntime's documentation names as a cause of large accuracy drops. Measured on such a CPU (AMD
    EPYC, AVX2 only; the mpnet student on 30 trec questions, 150 test questions): signed weights gave
    1.3% accuracy against the float graph's 56.7%, unsigned 57.3% (minilm: 46.0% and 46.7%, float
    46.7%). A graph quantised and checked on a VNNI CPU would otherwise break where it is deployed.
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a "consider pre-processing" warning per call
    try:
        quantize_dynamic(str(model_path), str(out_path), per_channel=True, weight_type=QuantType.QUInt8)
    finally:
        root.setLevel(level)
