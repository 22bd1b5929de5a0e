"""The onnxruntime side of the runtime: classification students (`RuntimeStudent`, graph input
raw text or WordPiece ids) and NER taggers (`RuntimeTagger`), each read from its student folder.

Imports json, pathlib, numpy and onnxruntime; `tokenizers` only when a transformer student
(input "token_ids", e.g. `minilm`) is loaded, `evokd.ner` only when a tagger tags texts.
"""

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402

from evokd.runtime.common import (  # noqa: E402
    LABELS_FILE, META_FILE, MODEL_FILE, StudentLoadError, check_texts, first_line, read_json,
)
from evokd.runtime.tags import (  # noqa: E402
    CHARS_FILE, TAGGER_INPUTS, TAGGER_OUTPUT, WORDS_FILE, batches_by_length, check_token_lists, decode_tags,
    encode_tokens, entities_from_tags,
)

PROBABILITIES_OUTPUT = "probabilities"



class TextFeeds:
    """Raw strings, one text per run: the graph does its own tokenisation (TF-IDF students).

    The graph's rows are dense over the whole vocabulary (81k floats for SST-2); one row stays in
    cache, while 1,000 rows per run were 7x slower per text (21k vs 2.9k texts/s here).
    """

    def __init__(self, model_path: Path, meta: dict, input_names: list[str]):
        self.name = input_names[0]

    def batches(self, texts: list[str]):
        for i, text in enumerate(texts):
            yield [i], {self.name: np.array([[text]], dtype=object)}


TOKENIZER_FILE = "tokenizer.json"
TOKEN_INPUTS = ("input_ids", "attention_mask")


class TokenIdFeeds:
    """WordPiece ids and attention mask from the student's `tokenizer.json` (transformer students).

    All texts of a call are tokenised first, sorted by their number of tokens and cut into batches
    of at most `max_batch_tokens` padded tokens; each batch is padded only to its own longest text.
    A transformer's cost grows with the padded tokens and the graph masks padding out of attention
    and pooling, so the batching changes speed only, never a result. Sorting by tokens rather
    than by characters (sentence-transformers' order) cut the padded work by 18-20 points on the
    benchmark test sets, and batches of ~512 tokens keep a layer's activations in cache
    (benchmarks/students.md).
    """

    def __init__(self, model_path: Path, meta: dict, input_names: list[str], max_batch_tokens: int = 512,
                 max_batch_rows: int = 256):
        if sorted(input_names) != sorted(TOKEN_INPUTS):
            raise StudentLoadError(f"{model_path}: expected graph inputs {list(TOKEN_INPUTS)}, found {input_names}")
        path = Path(model_path).parent / TOKENIZER_FILE
        if not path.is_file():
            raise StudentLoadError(f"{path}: file not found; expected the student's tokenizer (a `tokenizers` JSON file)")
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise StudentLoadError(
                f"{model_path.parent}: this {meta.get('student', 'transformer')} student needs the `tokenizers` "
                "package (pip install tokenizers)"
            ) from None
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for malformed files
            raise StudentLoadError(f"{path}: expected a tokenizer the `tokenizers` package can read ({first_line(exc)})") from None
        padding = self.tokenizer.padding
        if not padding:
            raise StudentLoadError(f"{path}: expected a tokenizer with padding configured (pad token and id)")
        self.pad_id = int(padding["pad_id"])
        self.tokenizer.no_padding()  # batches are padded here, each to its own longest text
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_rows = max_batch_rows

    def batches(self, texts: list[str]):
        ids = [e.ids for e in self.tokenizer.encode_batch(texts)]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        start = 0
        while start < len(order):
            # the longest text of a batch is its last: grow it while the padded size stays in budget
            end = start + 1
            while (end < len(order) and end - start < self.max_batch_rows
                   and (end - start + 1) * len(ids[order[end]]) <= self.max_batch_tokens):
                end += 1
            index = order[start:end]
            width = len(ids[index[-1]])
            input_ids = np.full((len(index), width), self.pad_id, dtype=np.int64)
            attention_mask = np.zeros((len(index), width), dtype=np.int64)
            for row, i in enumerate(index):
                input_ids[row, :len(ids[i])] = ids[i]
                attention_mask[row, :len(ids[i])] = 1
            yield index, {"input_ids": input_ids, "attention_mask": attention_mask}
            start = end


# How each kind of graph input is built from texts, keyed by student.json's "input".
INPUT_ENCODERS = {"text": TextFeeds, "token_ids": TokenIdFeeds}


def make_session(model_path, intra_op_num_threads: int = 1) -> onnxruntime.InferenceSession:
    """One CPU session; a single thread is fastest for the single-sentence calls a CLI makes
    (0: onnxruntime's default, a thread per physical core, for large batches)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = intra_op_num_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises several unrelated types
        raise StudentLoadError(f"{model_path}: expected an ONNX model onnxruntime can load ({first_line(exc)})") from exc


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
        self.session = make_session(model_path, intra_op_num_threads)
        outputs = [o.name for o in self.session.get_outputs()]
        if PROBABILITIES_OUTPUT not in outputs:
            raise StudentLoadError(
                f"{model_path}: expected a graph output named {PROBABILITIES_OUTPUT!r}, "
                f"found {outputs}"
            )
        self.feeds = INPUT_ENCODERS[input_kind](Path(model_path), self.meta, [i.name for i in self.session.get_inputs()])

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities, one row per text, columns in `self.labels` order."""
        texts = check_texts(texts)
        proba = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for index, feeds in self.feeds.batches(texts):  # index: the rows of `texts` in this run
            (batch,) = self.session.run([PROBABILITIES_OUTPUT], feeds)
            batch = np.asarray(batch)
            expected = (len(index), len(self.labels))
            if batch.shape != expected:
                raise RuntimeError(f"model returned probabilities of shape {batch.shape}, expected {expected}")
            proba[index] = batch
        return proba

    def predict(self, texts: list[str]) -> list[dict]:
        """One {"label", "score"} per text; score is the probability of that label."""
        proba = self.predict_proba(texts)
        best = proba.argmax(axis=1)
        return [
            {"label": self.labels[j], "score": float(proba[i, j])} for i, j in enumerate(best)
        ]



class RuntimeTagger:
    """An NER student (token tagger) loaded into an onnxruntime session."""

    def __init__(
        self,
        model_path,
        tags: list[str],
        words: list[str],
        chars: list[str],
        max_word_length: int,
        meta: dict | None = None,
        intra_op_num_threads: int = 1,
        batch_size: int = 64,
    ):
        self.labels = list(tags)
        self.meta = dict(meta or {})
        self.max_word_length = int(max_word_length)
        self.batch_size = batch_size
        self._word_index = {w: i for i, w in enumerate(words)}
        self._char_index = {c: i for i, c in enumerate(chars)}
        self.session = make_session(model_path, intra_op_num_threads)
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if sorted(inputs) != sorted(TAGGER_INPUTS) or TAGGER_OUTPUT not in outputs:
            raise StudentLoadError(
                f"{model_path}: expected a tagger graph with inputs {list(TAGGER_INPUTS)} and output "
                f"{TAGGER_OUTPUT!r}, found inputs {inputs} and outputs {outputs}"
            )

    def encode(self, token_lists: list[list[str]]) -> dict:
        """The graph's feeds for sentences of equal length."""
        arrays = encode_tokens(token_lists, self._word_index, self._char_index, self.max_word_length)
        return dict(zip(TAGGER_INPUTS, arrays))

    def scores(self, token_lists: list[list[str]]) -> list[np.ndarray]:
        """Tag scores [n_tokens, n_tags] per sentence, columns in `self.labels` order."""
        out = [np.zeros((len(tokens), len(self.labels)), dtype=np.float32) for tokens in token_lists]
        for batch in batches_by_length([len(t) for t in token_lists], self.batch_size):
            (scores,) = self.session.run([TAGGER_OUTPUT], self.encode([token_lists[i] for i in batch]))
            for row, i in enumerate(batch):
                out[i] = scores[row]
        return out

    def predict_tags(self, token_lists: list[list[str]], repair: bool = True) -> list[list[str]]:
        """BIO tags for pre-tokenised sentences (lists of token strings)."""
        token_lists = check_token_lists(token_lists)
        return [decode_tags(s, self.labels, repair) for s in self.scores(token_lists)]

    def predict(self, texts: list[str]) -> list[dict]:
        """One {"entities": [{"start", "end", "label", "text"}, ...]} per text (character offsets)."""
        from evokd.ner import tokenize

        texts = check_texts(texts)
        tokens = [tokenize(text) for text in texts]
        tags = self.predict_tags([[t.text for t in toks] for toks in tokens])
        return [
            {"entities": entities_from_tags(text, toks, sentence_tags)}
            for text, toks, sentence_tags in zip(texts, tokens, tags)
        ]


def load_classifier(student_dir: Path, meta: dict, intra_op_num_threads: int = 1) -> RuntimeStudent:
    """A classification student's folder (student.json already read into `meta`)."""
    if meta["input"] not in INPUT_ENCODERS:
        raise StudentLoadError(
            f"{student_dir / META_FILE}: unknown input {meta['input']!r}; expected one of: {', '.join(INPUT_ENCODERS)}"
        )
    labels_path = student_dir / LABELS_FILE
    labels = read_json(labels_path, "a JSON list of label strings")
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


def load_tagger(student_dir: Path, meta: dict, intra_op_num_threads: int = 1) -> RuntimeTagger:
    """An NER tagger's folder (student.json already read into `meta`)."""
    meta_path = student_dir / META_FILE
    if meta["input"] != "tokens":
        raise StudentLoadError(
            f"{meta_path}: unknown kind 'ner' with input {meta['input']!r}; "
            "expected input 'tokens' for NER students"
        )
    if not isinstance(meta.get("max_word_length"), int) or meta["max_word_length"] < 1:
        raise StudentLoadError(
            f"{meta_path}: expected a positive integer \"max_word_length\" for an NER student, "
            f"got {meta.get('max_word_length')!r}"
        )
    files = {}
    for name, what in ((LABELS_FILE, "BIO tags"), (WORDS_FILE, "vocabulary words"), (CHARS_FILE, "vocabulary characters")):
        value = read_json(student_dir / name, f"a JSON list of {what}")
        if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, str) for v in value):
            raise StudentLoadError(
                f"{student_dir / name}: expected a JSON list of at least 2 {what}, got {json.dumps(value)[:80]}"
            )
        files[name] = value
    if files[LABELS_FILE][0] != "O":
        raise StudentLoadError(
            f"{student_dir / LABELS_FILE}: expected BIO tags starting with 'O', got {json.dumps(files[LABELS_FILE])[:80]}"
        )
    model_path = student_dir / MODEL_FILE
    if not model_path.is_file():
        raise StudentLoadError(f"{model_path}: file not found; expected an ONNX model")
    return RuntimeTagger(
        model_path, files[LABELS_FILE], files[WORDS_FILE], files[CHARS_FILE],
        meta["max_word_length"], meta, intra_op_num_threads,
    )

