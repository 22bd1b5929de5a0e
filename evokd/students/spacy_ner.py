"""spaCy NER student: spaCy's default NER pipeline (tok2vec + transition-based parser), trained
from `spacy.blank("en")` and shipped as a spaCy pipeline directory plus an installable wheel.

spaCy pipelines cannot be exported to ONNX, so this student runs with spaCy instead of
onnxruntime (student.json "runtime": "spacy"). The tokenizer is the one `evokd.ner.tokenize`
uses (spaCy's rule-based English tokenizer), so training spans and predicted spans are
token-aligned in the same way as the `tagger` student's. `save` writes:

- `pipeline/`: `nlp.to_disk`, loadable with `spacy.load(DIR / "pipeline")` (what the runtime does);
- `en_<package_name>-<version>-py3-none-any.whl`: the same pipeline as a Python package built by
  `python -m spacy package --build wheel` (`pip install` it, then `spacy.load("en_<package_name>")`);
- `student.json` and `labels.json` (entity types).

The "parity" check of `save` loads the written pipeline back and requires identical entities on
the check texts (and reports the largest difference of the tok2vec features).
spaCy is imported inside functions: importing `evokd.students` stays light.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import evokd
from evokd.runtime import LABELS_FILE, META_FILE
from evokd.runtime import check_texts as _check_texts
from evokd.runtime.spacy import PIPELINE_DIR, RUNTIME_NAME, load_spacy_ner
from evokd.runtime.spacy import spans_of as _spans_of
from evokd.students.base import NerStudent, ParityError
from evokd.students.threads import blas_threads as _threads

load_runtime = load_spacy_ner  # what `evokd.runtime.load_student` runs for a saved spacy-ner student
DEFAULT_PACKAGE_NAME = "evokd_spacy_ner"
PACKAGE_VERSION = "0.1.0"
_PACKAGE_TIMEOUT_S = 300


def _reference_doc(nlp, text: str, spans: list[dict], where: str):
    """A Doc of `text` whose entities are `spans`, each widened to the tokens it touches."""
    doc = nlp.make_doc(text)
    ents = []
    for j, span in enumerate(sorted(spans, key=lambda s: (s["start"], s["end"]))):
        ent = doc.char_span(span["start"], span["end"], label=span["label"], alignment_mode="expand")
        if ent is None or not ent.text.strip():
            raise ValueError(
                f"{where} span [{span['start']}, {span['end']}) {span['label']} "
                f"{text[span['start']:span['end']]!r} covers no token (only whitespace)"
            )
        if ents and ent.start < ents[-1].end:
            prev = ents[-1]
            raise ValueError(
                f"{where}: spans [{prev.start_char}, {prev.end_char}) {prev.label_} and "
                f"[{span['start']}, {span['end']}) {span['label']} overlap (after widening to tokens); "
                "expected non-overlapping entities"
            )
        ents.append(ent)
    doc.ents = ents
    return doc


def _entity_f1(gold: list[list[dict]], pred: list[list[dict]]) -> float:
    """Micro entity F1 over exact (sentence, start, end, label) matches."""
    g = {(i, s["start"], s["end"], s["label"]) for i, spans in enumerate(gold) for s in spans}
    p = {(i, s["start"], s["end"], s["label"]) for i, spans in enumerate(pred) for s in spans}
    return 2 * len(g & p) / (len(g) + len(p)) if g or p else 1.0


class SpacyNerStudent(NerStudent):
    """spaCy's default NER model (HashEmbedCNN tok2vec + transition-based parser) from spacy.blank("en").

    fit(texts, entities) takes character spans {"start", "end", "label"} (end exclusive); spans
    off token boundaries are widened to the tokens they touch. predict(texts) returns spans with
    their "text" too. `labels_` holds the entity types.
    """

    name = "spacy-ner"
    runtime = RUNTIME_NAME
    _fitted_attribute = "nlp_"

    def __init__(
        self,
        max_epochs: int = 10,
        dropout: float = 0.1,
        batch_start: int = 4,
        batch_stop: int = 32,
        batch_compound: float = 1.001,
        learn_rate: float = 0.001,
        min_updates: int = 100,
        patience: int = 3,
        validation_fraction: float = 0.1,
        min_validation_sentences: int = 200,
        max_seconds: float | None = None,
        n_threads: int | None = 1,
        seed: int = 0,
        verbose: bool = False,
    ):
        """max_epochs: passes over the data (100 sentences x 10 epochs: ~5 s on one core).
        Batches grow from `batch_start` to `batch_stop` sentences (compounding by `batch_compound`
        per batch, as spaCy's own training does). min_updates: tiny data sets run more epochs
        (at most 10 x max_epochs) until this many optimiser steps. Early stopping (`patience`
        epochs without a better entity F1, best weights kept) runs on `validation` given to fit,
        else on a held-out `validation_fraction` when fit gets at least `min_validation_sentences`
        sentences; otherwise all epochs run. max_seconds stops training after the epoch that
        crosses it (None: no limit). n_threads caps BLAS/OpenMP threads while training."""
        self.max_epochs = max_epochs
        self.dropout = dropout
        self.batch_start = batch_start
        self.batch_stop = batch_stop
        self.batch_compound = batch_compound
        self.learn_rate = learn_rate
        self.min_updates = min_updates
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.min_validation_sentences = min_validation_sentences
        self.max_seconds = max_seconds
        self.n_threads = n_threads
        self.seed = seed
        self.verbose = verbose

    # -- training -------------------------------------------------------------------
    def _fit(self, texts: list[str], entities: list[list[dict]], validation) -> None:
        import spacy
        from spacy.training import Example

        if not isinstance(self.max_epochs, int) or self.max_epochs < 1:
            raise ValueError(f"expected max_epochs to be a positive integer, got {self.max_epochs!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"expected 0 <= dropout < 1, got {self.dropout!r}")
        types = sorted({s["label"] for spans in entities for s in spans})
        if not types:
            raise ValueError(
                f"expected at least 1 entity span among the {len(texts)} texts, got none; "
                "the NER model needs examples of each entity type"
            )
        nlp = spacy.blank("en")
        examples = [
            Example(nlp.make_doc(text), _reference_doc(nlp, text, spans, f"text {i}"))
            for i, (text, spans) in enumerate(zip(texts, entities))
        ]
        dev_texts, dev_entities = None, None
        if validation is not None:
            dev_texts, dev_entities = validation
            for i, (text, spans) in enumerate(zip(dev_texts, dev_entities)):
                _reference_doc(nlp, text, spans, f"validation text {i}")  # same checks as training
        elif self.validation_fraction and len(examples) >= self.min_validation_sentences:
            order = list(range(len(examples)))
            random.Random(self.seed).shuffle(order)
            n_dev = max(1, int(round(len(examples) * self.validation_fraction)))
            dev_idx = set(order[:n_dev])
            dev_texts = [texts[i] for i in sorted(dev_idx)]
            dev_entities = [entities[i] for i in sorted(dev_idx)]
            examples = [ex for i, ex in enumerate(examples) if i not in dev_idx]

        with _threads(self.n_threads):
            self._train(nlp, examples, types, dev_texts, dev_entities)
        self.labels_ = types
        self.entity_types_ = types

    def _train(self, nlp, examples, types, dev_texts, dev_entities) -> None:
        from spacy.util import compounding, fix_random_seed, minibatch
        from thinc.api import Adam

        fix_random_seed(self.seed)
        ner = nlp.add_pipe("ner")
        for label in types:
            ner.add_label(label)
        nlp.initialize(lambda: examples)
        # spaCy's default training optimizer (config [training.optimizer]), learn_rate exposed
        optimizer = Adam(
            learn_rate=self.learn_rate, beta1=0.9, beta2=0.999, eps=1e-8, L2=0.01,
            L2_is_weight_decay=True, grad_clip=1.0, use_averages=False,
        )
        rng = random.Random(self.seed)
        sizes = compounding(self.batch_start, self.batch_stop, self.batch_compound)
        start = time.perf_counter()
        best_f1, best_bytes, best_epoch, bad_epochs = -1.0, None, 0, 0
        self.history_ = []
        n_updates, epoch = 0, 0
        self.stop_reason_ = "max_epochs"
        order = list(examples)
        # tiny data sets: keep going past max_epochs until min_updates steps (and at most 10x epochs)
        while epoch < self.max_epochs or (n_updates < self.min_updates and epoch < 10 * self.max_epochs):
            epoch += 1
            rng.shuffle(order)
            losses: dict = {}
            for batch in minibatch(order, size=sizes):
                nlp.update(batch, drop=self.dropout, sgd=optimizer, losses=losses)
                n_updates += 1
            record = {"epoch": epoch, "updates": n_updates, "loss": round(float(losses.get("ner", 0.0)), 3),
                      "seconds": round(time.perf_counter() - start, 1)}
            if dev_texts is not None:
                f1 = _entity_f1(dev_entities, self._predict_with(nlp, dev_texts))
                record["dev_f1"] = round(f1, 4)
                if f1 > best_f1:
                    best_f1, best_bytes, best_epoch, bad_epochs = f1, nlp.to_bytes(), epoch, 0
                else:
                    bad_epochs += 1
            self.history_.append(record)
            if self.verbose:
                print(f"spacy-ner {record}", file=sys.stderr, flush=True)
            if dev_texts is not None and bad_epochs >= self.patience:
                self.stop_reason_ = "patience"
                break
            if self.max_seconds is not None and time.perf_counter() - start >= self.max_seconds:
                self.stop_reason_ = "max_seconds"
                break
        if best_bytes is not None:
            nlp.from_bytes(best_bytes)
        self.best_epoch_ = best_epoch if best_bytes is not None else epoch
        self.best_dev_f1_ = best_f1 if best_bytes is not None else None
        self.n_updates_ = n_updates
        self.nlp_ = nlp

    # -- prediction -----------------------------------------------------------------
    @staticmethod
    def _predict_with(nlp, texts: list[str], batch_size: int = 256) -> list[list[dict]]:
        return [_spans_of(doc) for doc in nlp.pipe(texts, batch_size=batch_size)]

    def _predict(self, texts: list[str]) -> list[list[dict]]:
        return self._predict_with(self.nlp_, texts)  # thinc's CPU matmuls (blis) are single-threaded

    # -- shipping -------------------------------------------------------------------
    def save(self, out_dir, check_texts: list[str], package_name: str = DEFAULT_PACKAGE_NAME) -> dict:
        """Write pipeline/ (nlp.to_disk), the pipeline as a wheel (`spacy package --build wheel`),
        student.json and labels.json; load the written pipeline back and require identical entities
        on `check_texts`. Returns the parity report; raises ParityError on any difference."""
        import spacy

        self._check_fitted()
        check_texts = _check_texts(check_texts, what="check_texts")
        if not check_texts:
            raise ValueError("expected at least 1 text in check_texts to verify the saved pipeline, got 0")
        if not package_name.isidentifier() or not package_name.isascii():
            raise ValueError(f"expected package_name to be an ASCII Python identifier, got {package_name!r}")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        pipeline_dir = out_dir / PIPELINE_DIR
        if pipeline_dir.exists():
            shutil.rmtree(pipeline_dir)
        nlp = self.nlp_
        nlp.meta.update({
            "name": package_name, "version": PACKAGE_VERSION,
            "description": f"evokd {evokd.__version__} spacy-ner student (entity types: {', '.join(self.labels_)})",
            "author": "evokd", "license": "see the training data's licence",
        })
        nlp.to_disk(pipeline_dir)

        with _threads(self.n_threads):
            loaded = spacy.load(pipeline_dir)
            report = _parity(nlp, loaded, check_texts)
        if report["label_agreement"] != 1.0 or report["max_abs_diff"] != 0.0:
            raise ParityError(
                f"saved spaCy pipeline of {self.name} differs from {type(self).__name__}: identical "
                f"entities on {report['label_agreement']:.4f} of {report['n_checked']} texts, max |Δ tok2vec| "
                f"{report['max_abs_diff']:.2e}"
                + (f", first disagreement on {report.pop('first_disagreement')[:60]!r}" if "first_disagreement" in report else "")
            )
        wheel = build_wheel(pipeline_dir, out_dir, package_name, PACKAGE_VERSION)
        meta = {
            "student": self.name,
            "kind": self.kind,
            "runtime": RUNTIME_NAME,
            "input": self.input,
            "pipeline": PIPELINE_DIR,
            "wheel": wheel.name,
            "package": f"{nlp.meta['lang']}_{package_name}",
            "tokenizer": "spacy.blank('en') (= evokd.ner.tokenize)",
            "entity_types": list(self.labels_),
            "labels": list(self.labels_),
            "spacy_version": spacy.__version__,
            "evokd_version": evokd.__version__,
            "params": self.get_params(),
            "best_epoch": self.best_epoch_,
            "parity": report,
        }
        (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (out_dir / LABELS_FILE).write_text(json.dumps(list(self.labels_), ensure_ascii=False) + "\n", encoding="utf-8")
        return report


def _tok2vec_features(nlp, texts: list[str]):
    ner = nlp.get_pipe("ner")
    docs = [nlp.make_doc(t) for t in texts]
    return ner.model.get_ref("tok2vec").predict(docs)


def _parity(reference, loaded, texts: list[str]) -> dict:
    import numpy as np

    ref = SpacyNerStudent._predict_with(reference, texts)
    got = SpacyNerStudent._predict_with(loaded, texts)
    agree = [a == b for a, b in zip(ref, got)]
    max_abs_diff = 0.0
    for k in range(0, len(texts), 256):
        chunk = [t for t in texts[k:k + 256]]
        for a, b in zip(_tok2vec_features(reference, chunk), _tok2vec_features(loaded, chunk)):
            if a.size:
                max_abs_diff = max(max_abs_diff, float(np.max(np.abs(np.asarray(a) - np.asarray(b)))))
    report = {"n_checked": len(texts), "label_agreement": sum(agree) / len(agree), "max_abs_diff": max_abs_diff}
    if not all(agree):
        report["first_disagreement"] = texts[agree.index(False)]
    return report


def build_wheel(pipeline_dir: Path, out_dir: Path, package_name: str, version: str = PACKAGE_VERSION) -> Path:
    """Build `pipeline_dir` into a wheel with `python -m spacy package --build wheel` and copy it
    into `out_dir`; returns the copied wheel's path.

    spaCy 3.8 first runs `python -m build . --wheel`; without the `build` package (or offline,
    where build's isolated environment cannot download setuptools: PIP_NO_INDEX makes that fail
    at once instead of trying the network) it falls back to `python setup.py bdist_wheel`, which
    setuptools >= 70.1 implements itself. spaCy's pre-check still wants `build` or `wheel`
    importable; when neither is installed, setuptools' vendored `wheel` stands in for that check.
    """
    pipeline_dir, out_dir = Path(pipeline_dir), Path(out_dir)
    env = os.environ.copy()
    env["PIP_NO_INDEX"] = "1"  # never let `python -m build` fetch build requirements
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.setdefault("PYTHONWARNINGS", "ignore")
    # `python -m spacy`, after importing setuptools when `wheel`/`build` are not installed:
    # setuptools >= 71 appends its vendored packages (wheel included) to the END of sys.path,
    # which satisfies spaCy's `import wheel` check without shadowing any installed package
    launcher = "import runpy, sys; sys.argv[0] = 'spacy'; runpy.run_module('spacy', run_name='__main__', alter_sys=True)"
    if _needs_vendored_wheel():
        launcher = "import setuptools; " + launcher
    with tempfile.TemporaryDirectory(prefix="evokd-spacy-package-") as tmp:
        cmd = [
            sys.executable, "-c", launcher, "package", str(pipeline_dir), tmp,
            "--name", package_name, "--version", version, "--build", "wheel", "--force",
        ]
        try:
            proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=_PACKAGE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"`spacy package` did not finish in {_PACKAGE_TIMEOUT_S} s") from None
        wheels = sorted(Path(tmp).glob("*/dist/*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = " | ".join(line.strip() for line in (proc.stdout + proc.stderr).strip().splitlines()[-4:])
            raise RuntimeError(
                f"`spacy package --build wheel` failed (exit {proc.returncode}); it needs setuptools >= 70.1 "
                f"(or the `wheel` package): {tail}"
            )
        target = out_dir / wheels[0].name
        shutil.copyfile(wheels[0], target)
    return target


def _needs_vendored_wheel() -> bool:
    """True when neither `wheel` nor `build` is installed (spaCy's package command wants one)."""
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    if importlib.util.find_spec("wheel") is not None:
        return False
    try:
        version("build")
        return False
    except PackageNotFoundError:
        return True
