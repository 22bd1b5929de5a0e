"""Reading and writing labeled rows: JSONL, CSV and Parquet.

Every reader validates as it goes and raises `InputError` naming the file, the line and
the field, so bad data never turns into silently dropped or half-read rows.

Seeds and task files are read strictly: a repeated text or one over MAX_TEXT_CHARS is refused.
Training, eval and pool data are read as users have them (`TaskSpec.read_data`, `read_pool`):
a text over MAX_TEXT_CHARS is cut (`cut_text`); repeated texts of training data are merged
(`merge_repeats`: the majority label wins, a tie goes to the label seen first), while eval and
pool data keep every row (`count_repeats`). Every change is counted in a `ReadReport` that the
caller shows and records; nothing changes silently.
"""

from __future__ import annotations

import csv
import gzip
import io as _io
import json
import os
import re
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from evokd.errors import InputError

MAX_TEXT_CHARS = 20_000
REPORTED_LINES = 5  # conflict line numbers a ReadReport keeps


@dataclass
class ReadReport:
    """What reading one data file changed, so that nothing changes silently.

    rows_read: rows in the file; rows_kept: rows after merging repeats (rows_read - repeats_merged);
    repeats_merged: rows dropped because their text came earlier in the file (whether or not their
    label agreed); conflicts_resolved: texts whose rows disagreed on the label (NER: the entities),
    resolved by `merge_repeats`' rule; conflict_lines: the line of the first occurrence of the first
    REPORTED_LINES such texts; repeats_kept: rows of eval or pool data whose text came earlier,
    kept as rows (`count_repeats`); texts_cut: texts over MAX_TEXT_CHARS cut by `cut_text`;
    entities_dropped: NER entities that ended beyond such a cut."""

    file: str
    rows_read: int = 0
    rows_kept: int = 0
    repeats_merged: int = 0
    repeats_kept: int = 0
    conflicts_resolved: int = 0
    conflict_lines: list[int] = field(default_factory=list)
    texts_cut: int = 0
    entities_dropped: int = 0
    answer: str = "label"  # the field rows answer in: "label", or "entities" (NER)

    def describe(self) -> str:
        """One line for people, e.g. "data.jsonl: 12 rows, 9 kept: 3 repeated rows merged, ..."."""
        parts = []
        if self.repeats_merged:
            parts.append(f"{_n(self.repeats_merged, 'repeated row')} merged")
        if self.conflicts_resolved:
            lines = ", ".join(map(str, self.conflict_lines))
            more = ", ..." if self.conflicts_resolved > len(self.conflict_lines) else ""
            parts.append(f"{_n(self.conflicts_resolved, 'text')} with conflicting {'labels' if self.answer == 'label' else self.answer} "
                         f"resolved by majority, ties to the first seen (line{'s' if len(self.conflict_lines) > 1 else ''} "
                         f"{lines}{more})")
        if self.repeats_kept:
            parts.append(f"{_n(self.repeats_kept, 'row')} repeating an earlier text kept as written")
        if self.texts_cut:
            parts.append(f"{_n(self.texts_cut, 'text')} over {MAX_TEXT_CHARS:,} characters cut")
        if self.entities_dropped:
            parts.append(f"{_n(self.entities_dropped, 'entity', 'entities')} beyond the cut dropped")
        rows = _n(self.rows_read, "row")
        if not parts:
            return f"{self.file}: {rows}, nothing merged, resolved or cut"
        kept = f", {self.rows_kept:,} kept" if self.rows_kept != self.rows_read else ""
        return f"{self.file}: {rows}{kept}: {', '.join(parts)}"

    def as_dict(self) -> dict:
        """The counts plus "description" (`describe`), as metrics.json and run configs record them."""
        return {**asdict(self), "description": self.describe()}


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


_SPACE = re.compile(r"\s")


def cut_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """`text` if it has at most `limit` characters; otherwise cut at the last whitespace at or before
    position `limit` (a hard cut at `limit` when there is none), trailing whitespace removed."""
    if len(text) <= limit:
        return text
    last = max((m.start() for m in _SPACE.finditer(text, 0, limit + 1)), default=0)
    return text[:last].rstrip() if last > 0 else text[:limit]


def target_key(value):
    """A hashable form of a row's answer, for telling repeats from conflicts: a label as it is,
    NER entities as a sorted tuple of (start, end, label)."""
    if isinstance(value, list):
        return tuple(sorted((e["start"], e["end"], e["label"]) for e in value))
    return value


def count_repeats(texts: Iterable[str], report: ReadReport) -> None:
    """Count rows (of eval or pool data, which keep every row) into `report`: rows_read, rows_kept
    and repeats_kept, the rows whose text came earlier."""
    seen: set[str] = set()
    n = 0
    for text in texts:
        n += 1
        if text in seen:
            report.repeats_kept += 1
        seen.add(text)
    report.rows_read = report.rows_kept = n


def merge_repeats(numbered: list[tuple[int, dict]], key: str, report: ReadReport) -> list[tuple[int, dict]]:
    """Keep each text once, in the order texts first appear; returns (position in `numbered`, row).

    `numbered` holds (line, row) pairs; `key` is the field holding each row's answer ("label",
    "entities"). Rows that repeat a text with the same answer are merged into one. When the rows of
    a text disagree, the answer given by the most rows wins; on a tie, the tied answer seen first in
    the file wins. The kept row is the first one carrying the winning answer (its other fields come
    with it). Counts go into `report` (rows_read, rows_kept, repeats_merged, conflicts_resolved,
    conflict_lines)."""
    by_text: dict[str, list[int]] = {}
    for i, (_, row) in enumerate(numbered):
        by_text.setdefault(row["text"], []).append(i)
    kept: list[tuple[int, dict]] = []
    for positions in by_text.values():
        votes = Counter(target_key(numbered[i][1].get(key)) for i in positions)  # insertion order: first seen first
        winner = max(votes, key=votes.__getitem__)  # max keeps the first of tied answers
        if len(votes) > 1:
            report.conflicts_resolved += 1
            if len(report.conflict_lines) < REPORTED_LINES:
                report.conflict_lines.append(numbered[positions[0]][0])
        chosen = next(i for i in positions if target_key(numbered[i][1].get(key)) == winner)
        kept.append((positions[0], numbered[chosen][1]))
    report.rows_read = len(numbered)
    report.rows_kept = len(kept)
    report.repeats_merged = len(numbered) - len(kept)
    return kept


def data_suffix(path: str | Path) -> str:
    """The format suffix of a data file, looking through a trailing .gz: "x.jsonl.gz" -> ".jsonl"."""
    path = Path(path)
    if path.suffix.lower() == ".gz":
        path = path.with_suffix("")
    return path.suffix.lower()


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, expected a file") from None
    if path.suffix.lower() == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(path, f"not a readable gzip file ({exc}); expected gzip-compressed text") from None
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
    """Rows of a JSONL, CSV or Parquet file, chosen by extension; JSONL and CSV may be gzipped (.gz)."""
    path = Path(path)
    suffix = data_suffix(path)
    if suffix in (".jsonl", ".json", ".ndjson"):
        return iter_jsonl(path)
    if suffix == ".csv":
        return _iter_csv(path)
    if suffix == ".parquet" and path.suffix.lower() != ".gz":
        return _iter_parquet(path)
    raise InputError(path, f"unknown file type '{path.name}'; expected .jsonl, .csv or .parquet (.jsonl.gz and .csv.gz too)")


def _clean_text(path: Path, lineno: int, value, field: str = "text", *, long_ok: bool = False) -> str:
    """The stripped text; an InputError if it is not a non-empty printable string or, unless
    `long_ok` (the caller cuts it), is longer than MAX_TEXT_CHARS."""
    if not isinstance(value, str):
        raise InputError(path, f"expected a string, got {type(value).__name__}", line=lineno, field=field)
    text = value.strip()
    if not text:
        raise InputError(path, "empty text; expected a non-empty string", line=lineno, field=field)
    if len(text) > MAX_TEXT_CHARS and not long_ok:
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


def iter_labeled(path: str | Path, labels: Iterable[str] | None = None, *,
                 cut_into: ReadReport | None = None) -> Iterator[tuple[int, dict]]:
    """(line, row) for each classification row {"text", "label", ...} of a file, every row checked.
    A text over MAX_TEXT_CHARS is refused, or, given `cut_into`, cut (`cut_text`) and counted there."""
    path = Path(path)
    allowed = list(labels) if labels is not None else None
    ids: dict = {}
    for lineno, obj in iter_rows(path):
        check_id(path, lineno, obj, ids)
        if "text" not in obj:
            raise InputError(path, "missing; expected a string", line=lineno, field="text")
        if "label" not in obj:
            raise InputError(path, "missing; expected one of the task's labels", line=lineno, field="label")
        text = _fitted_text(path, lineno, obj["text"], cut_into)
        label = obj["label"]
        if not isinstance(label, str):
            raise InputError(path, f"expected a string label, got {type(label).__name__}", line=lineno, field="label")
        if allowed is not None and label not in allowed:
            raise InputError(path, f"'{label}' is not a task label; expected one of: {', '.join(allowed)}", line=lineno, field="label")
        yield lineno, {**obj, "text": text, "label": label}


def _fitted_text(path: Path, lineno: int, value, cut_into: ReadReport | None, field: str = "text") -> str:
    """`_clean_text`, with an over-long text refused (no `cut_into`) or cut and counted in `cut_into`."""
    text = _clean_text(path, lineno, value, field, long_ok=cut_into is not None)
    if len(text) > MAX_TEXT_CHARS:
        cut_into.texts_cut += 1
        text = cut_text(text)
    return text


def read_labeled(path: str | Path, labels: Iterable[str] | None = None, *, unique: bool = True) -> list[dict]:
    """Read classification rows {"text", "label"} strictly (seeds): every row is checked, none is
    dropped or changed; a text over MAX_TEXT_CHARS is refused, and so, with `unique`, is a repeated text."""
    path = Path(path)
    rows: list[dict] = []
    seen: dict[str, int] = {}
    for lineno, row in iter_labeled(path, labels):
        if unique:
            if row["text"] in seen:
                raise InputError(path, f"duplicates line {seen[row['text']]}; expected unique texts", line=lineno, field="text")
            seen[row["text"]] = lineno
        rows.append(row)
    return rows


def iter_pool_rows(path: str | Path, report: ReadReport, *, with_labels: bool = True) -> Iterator[tuple[int, dict]]:
    """(line, {"text", "label"}) for each row of an unlabeled pool: JSONL/CSV/Parquet rows with a
    'text' field and an optional string 'label' (None where absent; always None, the field ignored,
    without `with_labels`), or a .txt file, one text per line. Every row is checked; a text over
    MAX_TEXT_CHARS is cut and counted in `report`."""
    path = Path(path)
    if data_suffix(path) == ".txt":  # taken as written, like read_texts: stripped, blank lines skipped
        for lineno, line in enumerate(_decode(path).splitlines(), start=1):
            text = line.strip()
            if len(text) > MAX_TEXT_CHARS:
                report.texts_cut += 1
                text = cut_text(text)
            if text:
                yield lineno, {"text": text, "label": None}
        return
    for lineno, obj in iter_rows(path):
        if "text" not in obj:
            raise InputError(path, "missing; expected a string", line=lineno, field="text")
        text = _fitted_text(path, lineno, obj["text"], report)
        label = obj.get("label") if with_labels else None
        if label is not None and not isinstance(label, str):
            raise InputError(path, f"expected a string label, got {type(label).__name__}", line=lineno, field="label")
        yield lineno, {"text": text, "label": label}


def read_pool(path: str | Path, labels: Iterable[str] | None = None) -> tuple[list[dict], ReadReport]:
    """An unlabeled pool as rows {"text", "label"} (JSONL/CSV/Parquet, or .txt one per line) and the
    report of what reading changed. Without `labels` every label is None; with them (--oracle),
    every row must carry one of them. Every row is checked and kept (a run's duplicate filter takes
    a repeated text once); texts over MAX_TEXT_CHARS are cut; repeats and cuts are counted."""
    path = Path(path)
    report = ReadReport(path.name)
    if labels is not None:
        rows = [{"text": r["text"], "label": r["label"]} for _, r in iter_labeled(path, labels, cut_into=report)]
    else:
        rows = [row for _, row in iter_pool_rows(path, report, with_labels=False)]
    if not rows:
        raise InputError(path, "no rows; expected unlabeled texts, one per row", field="text")
    count_repeats((r["text"] for r in rows), report)
    return rows, report


def read_texts(path: str | Path) -> list[str]:
    """Texts to predict: JSONL/CSV/Parquet rows with a 'text' field, or a plain .txt file, one per line."""
    path = Path(path)
    if data_suffix(path) == ".txt":
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
