"""Token encoding and tag decoding of the NER tagger, shared by its training side
(`evokd.students.tagger`) and its onnxruntime side (`RuntimeTagger`), so both see the same ids
and give the same spans. numpy only; `evokd.ner` (spaCy's tokenizer rules) is imported when
tags are decoded into spans.
"""

import numpy as np

from evokd.runtime.common import check_texts

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


def check_token_lists(token_lists) -> list[list[str]]:
    """Pre-tokenised sentences (a list of lists of token strings), checked; TypeError/TextsError otherwise."""
    if isinstance(token_lists, str) or not isinstance(token_lists, (list, tuple)):
        raise TypeError(
            f"expected a list of token lists, got {type(token_lists).__name__}; "
            "e.g. [['Angela', 'Merkel', 'spoke']]"
        )
    for i, tokens in enumerate(token_lists):
        if isinstance(tokens, str) or not isinstance(tokens, (list, tuple)):
            raise TypeError(f"expected a list of token lists, got {type(tokens).__name__} at index {i}")
    return [check_texts(tokens, what="tokens") for tokens in token_lists]

