"""Deployment runtime: run a saved student with onnxruntime alone.

This module is what `evokd predict` and shipped students depend on, so it imports only
json, pathlib, numpy and onnxruntime — never scikit-learn, torch or `evokd.students`.
A student directory holds `model.onnx`, `student.json` (how to feed and read the graph)
and `labels.json` (labels in probability-column order). Transformer students (input
"token_ids", e.g. `minilm`) also ship `tokenizer.json`, read with the `tokenizers` package,
which is imported only when such a student is loaded.

NER students (student.json kind "ner", input "tokens") also ship `words.json` and
`chars.json` (their vocabularies); texts are tokenised with `evokd.ner.tokenize` (spaCy's
rule-based tokenizer), imported only when such a student is loaded. The token encoding and
the tag decoding below are the ones the training side (`evokd.students.tagger`) uses too.
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
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StudentLoadError(f"{path}: expected a tokenizer the `tokenizers` package can read ({first_line})") from None
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
SUPPORTED_KINDS = ("classification", "ner")


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
    try:
        return onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises several unrelated types
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StudentLoadError(f"{model_path}: expected an ONNX model onnxruntime can load ({first_line})") from exc


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
        texts = _check_texts(texts)
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


def _read_json(path: Path, expected: str):
    if not path.is_file():
        raise StudentLoadError(f"{path}: file not found; expected {expected}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StudentLoadError(f"{path}: not valid JSON ({exc}); expected {expected}") from exc


# -- NER students -----------------------------------------------------------------------------
WORDS_FILE = "words.json"
CHARS_FILE = "chars.json"
TAGGER_INPUTS = ("word_ids", "char_ids", "case_ids")
TAGGER_OUTPUT = "scores"
PAD_ID, UNK_ID = 0, 1  # the first two entries of words.json and chars.json
CASE_NO_LETTERS, CASE_LOWER, CASE_UPPER, CASE_TITLE, CASE_MIXED = range(5)
N_CASES = 5


def normalise_word(word: str) -> str:
    """Word-vocabulary key: lower-cased, every digit mapped to 0 (dates and scores share entries)."""
    return "".join("0" if c.isdigit() else c for c in word.lower())


def case_id(word: str) -> int:
    """Capitalisation class of a token, which the lower-cased word vocabulary no longer shows."""
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return CASE_NO_LETTERS
    if all(c.islower() for c in letters):
        return CASE_LOWER
    if all(c.isupper() for c in letters):
        return CASE_UPPER
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return CASE_TITLE
    return CASE_MIXED


def encode_tokens(
    token_lists: list[list[str]], word_index: dict, char_index: dict, max_word_length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(word_ids [B, T], char_ids [B, T, C], case_ids [B, T]) int64 for sentences of equal length T.

    Words are cut to `max_word_length` characters; shorter ones are padded with PAD_ID, which
    the graph masks out, so C (the batch's longest word) does not change any output.
    """
    n_tokens = {len(tokens) for tokens in token_lists}
    if len(n_tokens) > 1:
        raise ValueError(f"expected sentences of equal length in one batch, got lengths {sorted(n_tokens)}")
    batch, length = len(token_lists), n_tokens.pop() if n_tokens else 0
    width = max((min(len(w), max_word_length) for tokens in token_lists for w in tokens), default=1)
    word_ids = np.zeros((batch, length), dtype=np.int64)
    char_ids = np.zeros((batch, length, max(width, 1)), dtype=np.int64)
    case_ids = np.zeros((batch, length), dtype=np.int64)
    for b, tokens in enumerate(token_lists):
        for t, word in enumerate(tokens):
            word_ids[b, t] = word_index.get(normalise_word(word), UNK_ID)
            case_ids[b, t] = case_id(word)
            for c, ch in enumerate(word[:max_word_length]):
                char_ids[b, t, c] = char_index.get(ch, UNK_ID)
    return word_ids, char_ids, case_ids


def batches_by_length(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of sentences with exactly the same number of tokens.

    A bidirectional LSTM's backward pass would read padding before the real tokens, so a
    batch never mixes lengths; empty sentences are left out (they have nothing to tag).
    """
    by_length: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        if n:
            by_length.setdefault(n, []).append(i)
    return [
        group[k:k + batch_size]
        for _, group in sorted(by_length.items())
        for k in range(0, len(group), batch_size)
    ]


def decode_tags(scores: np.ndarray, tags: list[str], repair: bool = True) -> list[str]:
    """Argmax tag per token; with `repair`, invalid BIO (I-X after O or another type) becomes B-X."""
    best = [tags[j] for j in np.asarray(scores).argmax(axis=-1)]
    if not repair:
        return best
    from evokd.ner import bio_to_token_spans

    fixed = ["O"] * len(best)
    for start, end, etype in bio_to_token_spans(best):
        fixed[start:end] = [f"B-{etype}"] + [f"I-{etype}"] * (end - start - 1)
    return fixed


def entities_from_tags(text: str, tokens: list, tags: list[str]) -> list[dict]:
    """{"start", "end", "label", "text"} character spans (end exclusive) for BIO tags over tokens."""
    from evokd.ner import bio_to_spans

    return [{**span, "text": text[span["start"]:span["end"]]} for span in bio_to_spans(text, tokens, tags)]


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
        token_lists = [_check_texts(tokens) for tokens in _check_token_lists(token_lists)]
        return [decode_tags(s, self.labels, repair) for s in self.scores(token_lists)]

    def predict(self, texts: list[str]) -> list[dict]:
        """One {"entities": [{"start", "end", "label", "text"}, ...]} per text (character offsets)."""
        from evokd.ner import tokenize

        texts = _check_texts(texts)
        tokens = [tokenize(text) for text in texts]
        tags = self.predict_tags([[t.text for t in toks] for toks in tokens])
        return [
            {"entities": entities_from_tags(text, toks, sentence_tags)}
            for text, toks, sentence_tags in zip(texts, tokens, tags)
        ]


def _check_token_lists(token_lists) -> list:
    if isinstance(token_lists, str) or not isinstance(token_lists, (list, tuple)):
        raise TypeError(
            f"expected a list of token lists, got {type(token_lists).__name__}; "
            "e.g. [['Angela', 'Merkel', 'spoke']]"
        )
    for i, tokens in enumerate(token_lists):
        if isinstance(tokens, str) or not isinstance(tokens, (list, tuple)):
            raise TypeError(f"expected a list of token lists, got {type(tokens).__name__} at index {i}")
    return list(token_lists)


def _load_tagger(student_dir: Path, meta: dict, intra_op_num_threads: int) -> RuntimeTagger:
    meta_path = student_dir / META_FILE
    if not isinstance(meta.get("max_word_length"), int) or meta["max_word_length"] < 1:
        raise StudentLoadError(
            f"{meta_path}: expected a positive integer \"max_word_length\" for an NER student, "
            f"got {meta.get('max_word_length')!r}"
        )
    files = {}
    for name, what in ((LABELS_FILE, "BIO tags"), (WORDS_FILE, "vocabulary words"), (CHARS_FILE, "vocabulary characters")):
        value = _read_json(student_dir / name, f"a JSON list of {what}")
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


def load_student(student_dir, intra_op_num_threads: int = 1) -> RuntimeStudent | RuntimeTagger:
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
    if meta.get("runtime") == "spacy":  # spaCy students ship a pipeline (and a wheel), not an ONNX graph
        if meta["kind"] == "ner":
            from evokd.students.spacy_ner import load_runtime as load_spacy_runtime
        else:
            from evokd.students.spacy_textcat import load_runtime as load_spacy_runtime

        return load_spacy_runtime(student_dir, meta)
    if meta["kind"] == "ner":
        if meta["input"] != "tokens":
            raise StudentLoadError(
                f"{meta_path}: unknown kind 'ner' with input {meta['input']!r}; "
                "expected input 'tokens' for NER students"
            )
        return _load_tagger(student_dir, meta, intra_op_num_threads)
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
