"""Reading and writing labeled rows: JSONL, CSV and Parquet.

Every reader validates as it goes and raises `InputError` naming the file, the line and
the field, so bad data never turns into silently dropped or half-read rows.
"""

from __future__ import annotations

import csv
import io as _io
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from evokd.errors import InputError

MAX_TEXT_CHARS = 20_000


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, expected a file") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(path, f"not valid UTF-8 at byte {exc.start} (expected UTF-8 text)", line=line) from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line."""
    path = Path(path)
    text = _decode(path)
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"invalid JSON ({exc.msg}); expected one JSON object per line", line=lineno) from None
        if not isinstance(obj, dict):
            raise InputError(path, f"expected a JSON object, got {type(obj).__name__}", line=lineno)
        yield lineno, obj


def _iter_csv(path: Path) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(_io.StringIO(_decode(path), newline=""))
    for row in reader:
        if None in row:
            raise InputError(path, "more values than header columns", line=reader.line_num)
        yield reader.line_num, dict(row)


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict]]:
    import duckdb

    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        rel = duckdb.connect().sql("SELECT * FROM read_parquet(?)", params=[str(path)])
        cols = rel.columns
        rows = rel.fetchall()
    except duckdb.Error as exc:
        raise InputError(path, f"not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    for i, values in enumerate(rows, start=1):
        yield i, dict(zip(cols, values))


def iter_rows(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Rows of a JSONL, CSV or Parquet file, chosen by extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return iter_jsonl(path)
    if suffix == ".csv":
        return _iter_csv(path)
    if suffix == ".parquet":
        return _iter_parquet(path)
    raise InputError(path, f"unknown file type '{suffix}'; expected .jsonl, .csv or .parquet")


def _clean_text(path: Path, lineno: int, value, field: str = "text") -> str:
    if not isinstance(value, str):
        raise InputError(path, f"expected a string, got {type(value).__name__}", line=lineno, field=field)
    text = value.strip()
    if not text:
        raise InputError(path, "empty text; expected a non-empty string", line=lineno, field=field)
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(path, f"text is {len(text)} characters; expected at most {MAX_TEXT_CHARS}", line=lineno, field=field)
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        raise InputError(path, "contains control characters; expected printable text", line=lineno, field=field)
    return text


def check_id(path: Path, lineno: int, obj: dict, seen: dict) -> None:
    """An optional 'id' field must be a string or integer, unique in the file."""
    if "id" not in obj or obj["id"] is None:
        return
    value = obj["id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(path, f"expected a string or integer id, got {type(value).__name__}", line=lineno, field="id")
    if value in seen:
        raise InputError(path, f"id {value!r} duplicates line {seen[value]}; expected unique ids", line=lineno, field="id")
    seen[value] = lineno


def read_labeled(path: str | Path, labels: Iterable[str] | None = None, *, unique: bool = True) -> list[dict]:
    """Read classification rows {"text", "label"}; every row is checked, none is dropped."""
    path = Path(path)
    allowed = list(labels) if labels is not None else None
    rows: list[dict] = []
    seen: dict[str, int] = {}
    ids: dict = {}
    for lineno, obj in iter_rows(path):
        check_id(path, lineno, obj, ids)
        if "text" not in obj:
            raise InputError(path, "missing; expected a string", line=lineno, field="text")
        if "label" not in obj:
            raise InputError(path, "missing; expected one of the task's labels", line=lineno, field="label")
        text = _clean_text(path, lineno, obj["text"])
        label = obj["label"]
        if not isinstance(label, str):
            raise InputError(path, f"expected a string label, got {type(label).__name__}", line=lineno, field="label")
        if allowed is not None and label not in allowed:
            raise InputError(path, f"'{label}' is not a task label; expected one of: {', '.join(allowed)}", line=lineno, field="label")
        if unique:
            if text in seen:
                raise InputError(path, f"duplicates line {seen[text]}; expected unique texts", line=lineno, field="text")
            seen[text] = lineno
        rows.append({**obj, "text": text, "label": label})
    return rows


def read_pool(path: str | Path, labels: Iterable[str] | None = None) -> list[dict]:
    """An unlabeled pool: rows {"text"} (JSONL/CSV/Parquet, or .txt one per line). With `labels`
    (--oracle), every row must also carry a "label" from them. Every row is checked, none is dropped."""
    path = Path(path)
    if labels is not None:
        rows = [{"text": r["text"], "label": r["label"]} for r in read_labeled(path, labels, unique=False)]
    else:
        rows = [{"text": t, "label": None} for t in read_texts(path)]
    if not rows:
        raise InputError(path, "no rows; expected unlabeled texts, one per row", field="text")
    return rows


def read_texts(path: str | Path) -> list[str]:
    """Texts to predict: JSONL/CSV/Parquet rows with a 'text' field, or a plain .txt file, one per line."""
    path = Path(path)
    if path.suffix.lower() == ".txt":
        return [line.strip() for line in _decode(path).splitlines() if line.strip()]
    texts = []
    for lineno, obj in iter_rows(path):
        if "text" not in obj:
            raise InputError(path, "missing; expected a string", line=lineno, field="text")
        texts.append(_clean_text(path, lineno, obj["text"]))
    return texts


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write to a temp file beside `path`, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make outputs unreadable to others
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict]) -> int:
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]
    write_text_atomic(path, "".join(lines))
    return len(lines)


def write_json_atomic(path: str | Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")
