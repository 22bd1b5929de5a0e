"""What every part of the runtime shares: a student folder's file names, its load error, the input check."""

import json
from pathlib import Path

MODEL_FILE = "model.onnx"
META_FILE = "student.json"
LABELS_FILE = "labels.json"


class StudentLoadError(Exception):
    """A student directory is missing a file or holds one that is not what evokd wrote."""


class TextsError(TypeError, ValueError):
    """Texts that are not a list of strings. Both a TypeError (what the runtime raises for a wrong
    input type) and a ValueError (what a student's fit and predict raise for input they cannot use)."""


def check_texts(texts, what: str = "texts") -> list[str]:
    """`texts` as a list, or TextsError unless it is a list (any iterable but a str) of strings.

    The one input check of students (`fit`, `predict`, check texts) and runtimes (`predict`).
    """
    if isinstance(texts, str):
        raise TextsError(f"expected {what} to be a list of strings, got a single str; wrap it in a list")
    try:
        texts = list(texts)
    except TypeError:
        raise TextsError(f"expected {what} to be a list of strings, got {type(texts).__name__}") from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TextsError(
                f"expected {what} to be a list of strings, got {type(text).__name__} at index {i}: {text!r}"
            )
    return texts


def first_line(exc: BaseException) -> str:
    """An exception's first line (or its type's name): load errors stay one line."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def read_json(path: Path, expected: str):
    """A JSON file of a student folder; StudentLoadError (saying what was `expected`) if missing or not JSON."""
    if not path.is_file():
        raise StudentLoadError(f"{path}: file not found; expected {expected}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StudentLoadError(f"{path}: not valid JSON ({exc}); expected {expected}") from exc
