"""Filters for teacher output: validity, exact duplicates, near-duplicates.

Each returns a reject reason (or None), so every rejected text is stored with why.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

REASON_EMPTY = "empty"
REASON_TOO_SHORT = "too_short"
REASON_TOO_LONG = "too_long"
REASON_BAD_LABEL = "label_not_in_task"
REASON_NO_LABEL = "teacher_label_failed"
REASON_LEAK = "prompt_leak"
REASON_EXACT_DUP = "exact_duplicate"
REASON_NEAR_DUP = "near_duplicate"
REASON_LABEL_DISAGREES = "label_disagrees"
REASON_LOW_CONFIDENCE = "low_confidence"  # the teacher's probability of its label was under --min-confidence
REASON_OFF_INTENT = "label_not_intended"  # class-conditioned text the separate labeling put in another class
REASON_POOL_EMPTY = "pool_exhausted"

_WS = re.compile(r"\s+")
_PUNCT_EDGES = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)


def normalise(text: str) -> str:
    """Casefolded, NFKC, whitespace-collapsed, outer punctuation stripped: the dedup key."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _WS.sub(" ", text).strip()
    return _PUNCT_EDGES.sub("", text)


def text_hash(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:32]


def clean_generated(text) -> str:
    """Strip list bullets, numbering, a Markdown heading mark and wrapping quotes a teacher adds around a
    text ("# rugby is..."; a hashtag, "#rugby", is the text's own)."""
    if not isinstance(text, str):
        return ""
    text = text.strip()
    text = re.sub(r"^(\d+[.)]|[-*•]|#{1,6})\s+", "", text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”":
        text = text[1:-1].strip()
    if text[:1] in "“" and text[-1:] in "”":
        text = text[1:-1].strip()
    return _WS.sub(" ", text).strip()


class ValidityFilter:
    """Length bounds and prompt-leak checks (annotations like '(correct: LOC, student said: NUM)')."""

    def __init__(self, labels: list[str], min_chars: int = 3, max_chars: int = 1000):
        self.min_chars = min_chars
        self.max_chars = max_chars
        names = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
        self._leak = re.compile(
            r"(student\s+(said|predicted|pred)|\b(gold|correct|true|predicted|intended)\s*(label)?\s*[:=]"
            r"|\blabel\s*[:=]|\[\[\s*##|\bhard_texts\b|\beasy_texts\b|```"
            rf"|[(\[]\s*({names})\s*[)\]]\s*$)",
            re.IGNORECASE,
        )

    def reason(self, text: str) -> str | None:
        if not text or not text.strip():
            return REASON_EMPTY
        if len(text) < self.min_chars or not re.search(r"\w", text):
            return REASON_TOO_SHORT
        if len(text) > self.max_chars:
            return REASON_TOO_LONG
        if self._leak.search(text):
            return REASON_LEAK
        return None


class NearDuplicateFilter:
    """Cosine near-duplicates against every accepted vector and earlier texts of the same batch.

    Vectors are L2-normalised, so cosine is a dot product; the comparison runs in blocks so a
    store of a million rows never needs a million-by-batch matrix at once.
    """

    def __init__(self, threshold: float = 0.9, block: int = 65_536):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.block = block

    def max_similarity(self, queries: np.ndarray, pool: np.ndarray) -> np.ndarray:
        best = np.full(len(queries), -1.0, dtype=np.float32)
        for start in range(0, len(pool), self.block):
            sims = queries @ pool[start : start + self.block].T
            if sims.size:
                best = np.maximum(best, sims.max(axis=1))
        return best

    def select(self, vectors: np.ndarray, accepted: np.ndarray) -> list[bool]:
        """For each new vector in order: True if it is not a near-duplicate of `accepted` or of a kept earlier one."""
        against_store = self.max_similarity(vectors, accepted) if len(accepted) else np.full(len(vectors), -1.0)
        keep: list[bool] = []
        kept_vectors: list[np.ndarray] = []
        for i, vec in enumerate(vectors):
            if against_store[i] >= self.threshold:
                keep.append(False)
                continue
            if kept_vectors and float(np.max(np.stack(kept_vectors) @ vec)) >= self.threshold:
                keep.append(False)
                continue
            keep.append(True)
            kept_vectors.append(vec)
        return keep
