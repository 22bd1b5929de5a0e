"""spaCy text classifier student: the `textcat` component (exclusive classes) trained from
`spacy.blank("en")`, shipped as a spaCy pipeline directory plus an installable wheel.

spaCy pipelines cannot be exported to ONNX, so this student runs with spaCy instead of
onnxruntime (student.json "runtime": "spacy"), like `spacy-ner`. `save` writes `pipeline/`
(`nlp.to_disk`), the same pipeline as a wheel built by `spacy package --build wheel`,
`student.json` and `labels.json`; its "parity" check loads the written pipeline back and
requires the same probabilities on the check texts. spaCy is imported inside functions.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np

import evokd
from evokd.runtime import LABELS_FILE, META_FILE
from evokd.runtime import check_texts as _check_texts
from evokd.runtime.spacy import PIPELINE_DIR, RUNTIME_NAME, load_spacy_textcat
from evokd.students.base import PARITY_ATOL, ClassifierStudent, ParityError
from evokd.students.spacy_ner import PACKAGE_VERSION, build_wheel
from evokd.students.threads import blas_threads as _threads

load_runtime = load_spacy_textcat  # what `evokd.runtime.load_student` runs for a saved spacy-textcat student

DEFAULT_PACKAGE_NAME = "evokd_spacy_textcat"
ARCHITECTURES = ("ensemble", "bow", "cnn")


def _model_config(architecture: str, bow_length: int) -> dict:
    """spaCy's own textcat model configs (spacy.pipeline.textcat), exclusive classes, with the
    bag-of-words table shortened to `bow_length` hash buckets per class (spaCy: 262,144, i.e.
    1 MB per label, which alone would put a six-label student over a few MB)."""
    bow = {"@architectures": "spacy.TextCatBOW.v3", "exclusive_classes": True, "length": bow_length,
           "ngram_size": 1, "no_output_layer": False}
    cnn_tok2vec = {"@architectures": "spacy.HashEmbedCNN.v2", "pretrained_vectors": None, "width": 96, "depth": 4,
                   "embed_size": 2000, "window_size": 1, "maxout_pieces": 3, "subword_features": True}
    if architecture == "bow":
        return bow
    if architecture == "cnn":
        return {"@architectures": "spacy.TextCatReduce.v1", "exclusive_classes": True, "use_reduce_first": False,
                "use_reduce_last": False, "use_reduce_max": False, "use_reduce_mean": True, "tok2vec": cnn_tok2vec}
    return {
        "@architectures": "spacy.TextCatEnsemble.v2",
        "tok2vec": {
            "@architectures": "spacy.Tok2Vec.v2",
            "embed": {"@architectures": "spacy.MultiHashEmbed.v2", "width": 64, "rows": [2000, 2000, 500, 1000, 500],
                      "attrs": ["NORM", "LOWER", "PREFIX", "SUFFIX", "SHAPE"], "include_static_vectors": False},
            "encode": {"@architectures": "spacy.MaxoutWindowEncoder.v2", "width": 64, "window_size": 1,
                       "maxout_pieces": 3, "depth": 2},
        },
        "linear_model": bow,
    }


def _macro_f1(gold: list[str], pred: list[str], labels: list[str]) -> float:
    from evokd.metrics import classification_report

    return classification_report(gold, pred, labels)["macro_f1"]


class SpacyTextcatStudent(ClassifierStudent):
    """spaCy `textcat` (exclusive classes) from spacy.blank("en"); ships as a pipeline + wheel, run by spaCy."""

    name = "spacy-textcat"
    runtime = RUNTIME_NAME

    def __init__(
        self,
        architecture: str = "ensemble",
        bow_length: int = 65_536,
        max_epochs: int = 20,
        dropout: float = 0.2,
        batch_start: int = 4,
        batch_stop: int = 32,
        batch_compound: float = 1.001,
        learn_rate: float = 0.001,
        min_updates: int = 100,
        patience: int = 3,
        validation_fraction: float = 0.1,
        min_validation_texts: int = 200,
        max_seconds: float | None = None,
        n_threads: int | None = 1,
        seed: int = 0,
        verbose: bool = False,
    ):
        """architecture: spaCy's "ensemble" (its default: tok2vec + bag of words), "bow" or "cnn".
        Batches grow from `batch_start` to `batch_stop` texts (by `batch_compound` per batch, as
        spaCy's training does); tiny data sets run more epochs (at most 10 x max_epochs) until
        `min_updates` optimiser steps. Early stopping (`patience` epochs without a better
        macro-F1, best weights kept) uses a held-out `validation_fraction` when fit gets at least
        `min_validation_texts` texts; otherwise all epochs run. max_seconds stops after the epoch
        that crosses it. n_threads caps BLAS/OpenMP threads while training."""
        self.architecture = architecture
        self.bow_length = bow_length
        self.max_epochs = max_epochs
        self.dropout = dropout
        self.batch_start = batch_start
        self.batch_stop = batch_stop
        self.batch_compound = batch_compound
        self.learn_rate = learn_rate
        self.min_updates = min_updates
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.min_validation_texts = min_validation_texts
        self.max_seconds = max_seconds
        self.n_threads = n_threads
        self.seed = seed
        self.verbose = verbose

    # -- training -------------------------------------------------------------------
    def _fit(self, texts: list[str], labels: list[str], weights=None) -> None:
        import spacy
        from spacy.training import Example

        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"expected architecture to be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}")
        if not isinstance(self.max_epochs, int) or self.max_epochs < 1:
            raise ValueError(f"expected max_epochs to be a positive integer, got {self.max_epochs!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"expected 0 <= dropout < 1, got {self.dropout!r}")
        nlp = spacy.blank("en")
        textcat = nlp.add_pipe("textcat", config={"model": _model_config(self.architecture, self.bow_length)})
        for label in self.labels_:
            textcat.add_label(label)
        examples = [
            Example.from_dict(nlp.make_doc(text), {"cats": {lab: float(lab == label) for lab in self.labels_}})
            for text, label in zip(texts, labels)
        ]
        dev = None
        if self.validation_fraction and len(examples) >= self.min_validation_texts:
            order = list(range(len(examples)))
            random.Random(self.seed).shuffle(order)
            held_out = set(order[:max(1, int(round(len(examples) * self.validation_fraction)))])
            dev = ([texts[i] for i in sorted(held_out)], [labels[i] for i in sorted(held_out)])
            examples = [ex for i, ex in enumerate(examples) if i not in held_out]
        with _threads(self.n_threads):
            self._train(nlp, examples, dev)

    def _train(self, nlp, examples, dev) -> None:
        from spacy.util import compounding, fix_random_seed, minibatch
        from thinc.api import Adam

        fix_random_seed(self.seed)
        nlp.initialize(lambda: examples)
        # spaCy's default training optimizer (config [training.optimizer]), learn_rate exposed
        optimizer = Adam(learn_rate=self.learn_rate, beta1=0.9, beta2=0.999, eps=1e-8, L2=0.01,
                         L2_is_weight_decay=True, grad_clip=1.0, use_averages=False)
        rng = random.Random(self.seed)
        sizes = compounding(self.batch_start, self.batch_stop, self.batch_compound)
        start = time.perf_counter()
        best_f1, best_bytes, best_epoch, bad_epochs = -1.0, None, 0, 0
        self.history_, n_updates, epoch, order = [], 0, 0, list(examples)
        self.stop_reason_ = "max_epochs"
        while epoch < self.max_epochs or (n_updates < self.min_updates and epoch < 10 * self.max_epochs):
            epoch += 1
            rng.shuffle(order)
            losses: dict = {}
            for batch in minibatch(order, size=sizes):
                nlp.update(batch, drop=self.dropout, sgd=optimizer, losses=losses)
                n_updates += 1
            record = {"epoch": epoch, "updates": n_updates, "loss": round(float(losses.get("textcat", 0.0)), 4),
                      "seconds": round(time.perf_counter() - start, 1)}
            if dev is not None:
                f1 = _macro_f1(dev[1], self._labels_of(self._proba_with(nlp, dev[0])), self.labels_)
                record["dev_macro_f1"] = round(f1, 4)
                if f1 > best_f1:
                    best_f1, best_bytes, best_epoch, bad_epochs = f1, nlp.to_bytes(), epoch, 0
                else:
                    bad_epochs += 1
            self.history_.append(record)
            if self.verbose:
                print(f"spacy-textcat {record}", file=sys.stderr, flush=True)
            if dev is not None and bad_epochs >= self.patience:
                self.stop_reason_ = "patience"
                break
            if self.max_seconds is not None and time.perf_counter() - start >= self.max_seconds:
                self.stop_reason_ = "max_seconds"
                break
        if best_bytes is not None:
            nlp.from_bytes(best_bytes)
        self.best_epoch_ = best_epoch if best_bytes is not None else epoch
        self.n_updates_ = n_updates
        self.nlp_ = nlp

    # -- prediction -----------------------------------------------------------------
    def _proba_with(self, nlp, texts: list[str], batch_size: int = 256) -> np.ndarray:
        return np.array([[doc.cats[label] for label in self.labels_] for doc in nlp.pipe(texts, batch_size=batch_size)],
                        dtype=np.float64).reshape(len(texts), len(self.labels_))

    def _labels_of(self, proba: np.ndarray) -> list[str]:
        return [self.labels_[j] for j in proba.argmax(axis=1)]

    def _predict_proba(self, texts: list[str]) -> np.ndarray:
        return self._proba_with(self.nlp_, texts)

    def _to_onnx(self):
        raise NotImplementedError("spaCy pipelines cannot be exported to ONNX; save() ships the pipeline and a wheel")

    # -- shipping -------------------------------------------------------------------
    def save(self, out_dir, check_texts: list[str], package_name: str = DEFAULT_PACKAGE_NAME) -> dict:
        """Write pipeline/ (nlp.to_disk), the pipeline as a wheel (`spacy package --build wheel`),
        student.json and labels.json; load the written pipeline back and require the same
        probabilities on `check_texts`. Returns the parity report; raises ParityError on a difference."""
        import shutil

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
            "description": f"evokd {evokd.__version__} spacy-textcat student (labels: {', '.join(self.labels_)})",
            "author": "evokd", "license": "see the training data's licence",
        })
        nlp.to_disk(pipeline_dir)
        with _threads(self.n_threads):
            loaded = spacy.load(pipeline_dir)
            ref, got = self._proba_with(nlp, check_texts), self._proba_with(loaded, check_texts)
        agree = [a == b for a, b in zip(self._labels_of(ref), self._labels_of(got))]
        report = {"n_checked": len(check_texts), "label_agreement": sum(agree) / len(agree),
                  "max_abs_diff": float(np.max(np.abs(ref - got)))}
        if not all(agree) or report["max_abs_diff"] > PARITY_ATOL:
            raise ParityError(
                f"saved spaCy pipeline of {self.name} differs from {type(self).__name__}: label agreement "
                f"{report['label_agreement']:.4f} on {len(check_texts)} texts, max |Δp| {report['max_abs_diff']:.2e}"
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
