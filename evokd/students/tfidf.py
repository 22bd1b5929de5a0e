"""TF-IDF word/bigram features + logistic regression: the fastest and smallest classification student.

It refits in well under a second on the few hundred examples a loop round produces and
exports to a graph that takes raw strings, so the runtime needs no tokenizer of its own.
The graph is written with onnx.helper rather than skl2onnx (see `build_onnx_graph`), using
the same ONNX text operators skl2onnx uses and the same settings that make them match
scikit-learn exactly: locale C.UTF-8 for lower-casing and an RE2 token pattern equal to
sklearn's. Known gaps (Python's str.lower() is context-aware, C++ towlower is not): Turkish
"İ" and Greek word-final capital "Σ" tokenise differently; the parity check reports them.
"""

import numpy as np

from evokd.students.base import ClassifierStudent

# sklearn's `(?u)\w+` and the ONNX Tokenizer's RE2 pattern that matches the same tokens.
SKLEARN_TOKEN_PATTERN = r"(?u)\w+"
ONNX_TOKEN_PATTERN = r"[\p{L}\p{N}_]+"
# ONNX StringNormalizer lower-cases with a C++ locale; the default one leaves non-ASCII
# letters (É, Ü) unchanged while Python's str.lower() folds them.
ONNX_LOCALE = "C.UTF-8"
ONNX_OPSET = 21


class TfidfStudent(ClassifierStudent):
    """Word n-gram TF-IDF + LogisticRegression (scikit-learn), exported to a raw-text ONNX graph."""

    takes_sample_weight = True

    name = "tfidf"

    def __init__(
        self,
        ngram_range: tuple[int, int] = (1, 2),
        C: float = 10.0,
        max_features: int | None = 200_000,
        min_df: int = 1,
        class_weight: str | dict | None = "balanced",
        random_state: int = 0,
    ):
        self.ngram_range = ngram_range
        self.C = C
        self.max_features = max_features
        self.min_df = min_df
        self.class_weight = class_weight
        self.random_state = random_state

    def _fit(self, texts: list[str], labels: list[str], weights) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline

        self.pipeline_ = Pipeline(
            [
                (
                    "tfidf",
                    TfidfVectorizer(
                        lowercase=True,
                        token_pattern=SKLEARN_TOKEN_PATTERN,
                        ngram_range=tuple(self.ngram_range),
                        max_features=self.max_features,
                        min_df=self.min_df,
                    ),
                ),
                (
                    "lr",
                    LogisticRegression(
                        C=self.C,
                        # newton-cg: same optimum as lbfgs, converges in ~6 steps here;
                        # lbfgs took 10-40x longer on 500-3,000 texts (trec: 7.8 s vs 0.6 s)
                        solver="newton-cg",
                        max_iter=2000,
                        class_weight=self.class_weight,
                        random_state=self.random_state,
                    ),
                ),
            ]
        )
        self.pipeline_.fit(texts, labels, lr__sample_weight=weights)
        if list(self.pipeline_.classes_) != self.labels_:
            raise RuntimeError(f"classifier classes {list(self.pipeline_.classes_)} != {self.labels_}")

    def _predict_proba(self, texts: list[str]) -> np.ndarray:
        return self.pipeline_.predict_proba(texts)

    def _to_onnx(self):
        tfidf, lr = self.pipeline_.named_steps["tfidf"], self.pipeline_.named_steps["lr"]
        return build_onnx_graph(tfidf, lr, input_name=self.input, name=f"evokd-{self.name}")


def build_onnx_graph(tfidf, lr, input_name: str = "text", name: str = "evokd-tfidf", opset: int = ONNX_OPSET):
    """Raw strings -> (label, probabilities), written directly with onnx.helper.

    skl2onnx's converter gives the same numbers but (1.20) takes ~12 s on an 80k-term
    vocabulary (its option handling walks every vocabulary entry) and its graph ends in
    ai.onnx.ml Normalizer + LinearClassifier over a dense row, ~400 µs per sentence. Here
    idf is folded into TfIdfVectorizer's weights and each class score is a [1, F] x [F, N]
    MatMul (onnxruntime's fast path), divided by the row's L2 norm afterwards.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    vocabulary = tfidf.vocabulary_
    n_features = len(vocabulary)
    min_n, max_n = tfidf.ngram_range
    by_length: dict[int, list[tuple[str, int]]] = {n: [] for n in range(1, max_n + 1)}
    for term, column in vocabulary.items():
        by_length[len(term.split(" "))].append((term, column))
    pool_strings, ngram_counts, ngram_indexes = [], [], []
    for n in range(1, max_n + 1):  # the pool lists all 1-grams, then all 2-grams, ...
        ngram_counts.append(len(pool_strings))  # where the n-grams start in the pool
        for term, column in sorted(by_length[n]):
            pool_strings.extend(term.split(" "))
            ngram_indexes.append(column)
    idf = tfidf.idf_.astype(np.float32)
    pad = "#"
    while pad in vocabulary:
        pad += "#"

    coef = np.asarray(lr.coef_, dtype=np.float32)  # (1, F) binary, (k, F) multiclass
    labels = [str(c) for c in lr.classes_]
    init = [
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat_shape"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array(1e-30, dtype=np.float32), "tiny"),
        numpy_helper.from_array(np.asarray(lr.intercept_, dtype=np.float32), "intercept"),
        helper.make_tensor("classes", TensorProto.STRING, [len(labels)], [c.encode() for c in labels]),
    ]
    nodes = [
        helper.make_node("Reshape", [input_name, "flat_shape"], ["flat"]),
        helper.make_node(
            "StringNormalizer", ["flat"], ["lower"],
            case_change_action="LOWER", is_case_sensitive=0, locale=ONNX_LOCALE,
        ),
        helper.make_node(
            "Tokenizer", ["lower"], ["tokens3"], domain="com.microsoft",
            mark=0, mincharnum=1, pad_value=pad, tokenexp=ONNX_TOKEN_PATTERN,
        ),
        helper.make_node("Flatten", ["tokens3"], ["tokens"], axis=1),
        helper.make_node(
            "TfIdfVectorizer", ["tokens"], ["x"], mode="TFIDF",
            min_gram_length=min_n, max_gram_length=max_n, max_skip_count=0,
            ngram_counts=ngram_counts, ngram_indexes=ngram_indexes,
            pool_strings=pool_strings, weights=idf[ngram_indexes].tolist(),
        ),
        helper.make_node("Mul", ["x", "x"], ["x2"]),
        helper.make_node("ReduceSum", ["x2", "axis1"], ["norm2"], keepdims=1),
        helper.make_node("Sqrt", ["norm2"], ["norm"]),
        helper.make_node("Max", ["norm", "tiny"], ["safe_norm"]),  # empty row stays 0
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),
    ]
    rows = []
    for i, row in enumerate(coef):
        init.append(numpy_helper.from_array(row.reshape(1, -1), f"coef_{i}"))
        nodes.append(helper.make_node("MatMul", [f"coef_{i}", "xt"], [f"dot_{i}"]))
        rows.append(f"dot_{i}")
    nodes += [
        helper.make_node("Concat", rows, ["dots_t"], axis=0) if len(rows) > 1
        else helper.make_node("Identity", rows, ["dots_t"]),
        helper.make_node("Transpose", ["dots_t"], ["dots"], perm=[1, 0]),
        helper.make_node("Div", ["dots", "safe_norm"], ["scaled"]),
        helper.make_node("Add", ["scaled", "intercept"], ["logits"]),
    ]
    if len(labels) == 2:  # sklearn: [1 - expit(z), expit(z)]
        init.append(numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"))
        nodes += [
            helper.make_node("Sigmoid", ["logits"], ["p1"]),
            helper.make_node("Sub", ["one", "p1"], ["p0"]),
            helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
        ]
    else:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    nodes += [
        helper.make_node("ArgMax", ["probabilities"], ["best"], axis=1, keepdims=0),
        helper.make_node("Gather", ["classes", "best"], ["label"], axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(input_name, TensorProto.STRING, [None, 1])],
        [
            helper.make_tensor_value_info("label", TensorProto.STRING, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, len(labels)]),
        ],
        initializer=init,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)],
        producer_name="evokd",
    )
    model.ir_version = 10
    onnx.checker.check_model(model)
    if n_features != len(ngram_indexes):
        raise RuntimeError(f"built {len(ngram_indexes)} n-grams for {n_features} features")
    return model
