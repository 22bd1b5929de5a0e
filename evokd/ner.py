"""Named-entity data: one tokenizer, tag schemes, exact character spans, mention location.

Everything in evokd that touches NER goes through this module:

- `tokenize` is the single tokenizer (spaCy's rule-based English tokenizer from `spacy.blank`),
  with exact character offsets (`text[t.start:t.end] == t.text`).
- Spans are dicts `{"start", "end", "label"}`: character offsets, end exclusive.
- Tag sequences are BIO inside evokd; IOB1 and BIOES (BILOU) are converted on read.
- Invalid BIO sequences are repaired the CoNLL-eval way: an `I-X` after `O` or after another
  type starts a new entity of type X.
- The teacher returns entity mentions as (surface, type), never offsets; `locate_mentions`
  finds them in the text, token-aligned, and says why it rejected the ones it could not place.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

from evokd.errors import InputError
from evokd.io import write_text_atomic

SCHEMES = ("BIO", "IOB1", "BIOES")
_SCHEME_ALIASES = {"BIO": "BIO", "IOB2": "BIO", "IOB1": "IOB1", "BIOES": "BIOES", "IOBES": "BIOES", "BILOU": "BIOES"}

REASON_NOT_IN_TEXT = "mention_not_in_text"
REASON_NOT_ALIGNED = "mention_not_token_aligned"
REASON_BAD_TYPE = "type_not_in_task"
REASON_OVERLAP = "mention_overlaps"
REASON_EMPTY = "empty_mention"
CONLL_SUFFIXES = (".conll", ".iob", ".bio")
REASONS = (REASON_NOT_IN_TEXT, REASON_NOT_ALIGNED, REASON_BAD_TYPE, REASON_OVERLAP, REASON_EMPTY)

# Characters stripped around a mention's surface string (whitespace is stripped too).
_QUOTES = "\"'`\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u00ab\u00bb\u2039\u203a"


class Token(NamedTuple):
    text: str
    start: int
    end: int


class SpanAlignmentError(ValueError):
    """A character span whose start or end does not fall on a token boundary."""


# ---------------------------------------------------------------------------------------------
# tokenizer


@lru_cache(maxsize=1)
def _tokenizer():
    import spacy

    return spacy.blank("en").tokenizer


def tokenize(text: str) -> list[Token]:
    """spaCy rule-based English tokens with exact character offsets; whitespace tokens excluded."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a string, got {type(text).__name__}")
    out = []
    for t in _tokenizer()(text):
        if t.is_space or not t.text.strip():
            continue
        out.append(Token(t.text, t.idx, t.idx + len(t.text)))
    return out


# ---------------------------------------------------------------------------------------------
# tag schemes


def _norm_scheme(scheme: str) -> str:
    key = str(scheme).upper()
    if key not in _SCHEME_ALIASES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)} (or BILOU)")
    return _SCHEME_ALIASES[key]


def _split_tag(tag, allowed: str, scheme: str, index: int) -> tuple[str, str]:
    """('O', '') or (prefix, type); ValueError naming the tag, its position and what was expected."""
    if not isinstance(tag, str):
        raise ValueError(f"tag {index} is {type(tag).__name__}, expected a string like 'B-PER' or 'O'")
    if tag == "O":
        return "O", ""
    prefix, sep, etype = tag.partition("-")
    if not sep or not etype or prefix not in allowed:
        want = ", ".join(f"{p}-TYPE" for p in allowed)
        raise ValueError(f"tag {index} {tag!r} has an unknown prefix for scheme {scheme}; expected 'O' or {want}")
    return prefix, etype


def to_bio(tags: Sequence[str], scheme: str = "BIO") -> list[str]:
    """Convert IOB1 / BIOES (BILOU: L=E, U=S) tags to BIO; BIO passes through (prefixes checked)."""
    sch = _norm_scheme(scheme)
    out: list[str] = []
    if sch == "BIO":
        for i, tag in enumerate(tags):
            _split_tag(tag, "BI", sch, i)
            out.append(tag)
        return out
    if sch == "IOB1":
        prev_type = None  # type of the previous token's entity, None after O
        for i, tag in enumerate(tags):
            prefix, etype = _split_tag(tag, "BI", sch, i)
            if prefix == "O":
                out.append("O")
                prev_type = None
            elif prefix == "B" or prev_type != etype:
                out.append(f"B-{etype}")
                prev_type = etype
            else:
                out.append(f"I-{etype}")
        return out
    # BIOES / BILOU
    for i, tag in enumerate(tags):
        prefix, etype = _split_tag(tag, "BIESLU", sch, i)
        if prefix == "O":
            out.append("O")
        elif prefix in "BSU":
            out.append(f"B-{etype}")
        else:  # I, E, L
            out.append(f"I-{etype}")
    return out


def bio_to_token_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """(first token, end token exclusive, type) for each entity in BIO tags, repairing invalid
    sequences: an I-X after O or after another type starts a new entity of type X."""
    spans: list[tuple[int, int, str]] = []
    cur_start, cur_type = None, None
    for i, tag in enumerate(tags):
        prefix, etype = _split_tag(tag, "BI", "BIO", i)
        if prefix == "O":
            if cur_type is not None:
                spans.append((cur_start, i, cur_type))
            cur_start, cur_type = None, None
        elif prefix == "I" and cur_type == etype:
            continue
        else:  # B-X, or I-X that cannot continue the current entity
            if cur_type is not None:
                spans.append((cur_start, i, cur_type))
            cur_start, cur_type = i, etype
    if cur_type is not None:
        spans.append((cur_start, len(tags), cur_type))
    return spans


# ---------------------------------------------------------------------------------------------
# tokens/tags <-> text/spans


def tokens_to_example(tokens: Sequence[str], tags: Sequence[str], scheme: str = "BIO") -> dict:
    """{"text", "entities"}: tokens joined by single spaces, entities as character spans."""
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags; expected one tag per token")
    offsets = []
    pos = 0
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str) or not tok or tok != tok.strip() or any(c.isspace() for c in tok):
            raise ValueError(f"token {i} {tok!r} is empty or contains whitespace; expected a non-empty word")
        offsets.append((pos, pos + len(tok)))
        pos += len(tok) + 1
    text = " ".join(tokens)
    bio = to_bio(tags, scheme)
    entities = [{"start": offsets[s][0], "end": offsets[e - 1][1], "label": t} for s, e, t in bio_to_token_spans(bio)]
    return {"text": text, "entities": entities}


def _span_tuple(span) -> tuple[int, int, str]:
    if isinstance(span, dict):
        return span["start"], span["end"], span["label"]
    start, end, label = span
    return start, end, label


def spans_to_bio(text: str, spans, tokens: list[Token] | None = None, strict: bool = True) -> list[str]:
    """BIO tags over `tokens` (default `tokenize(text)`).

    strict=True: a span not on token boundaries raises SpanAlignmentError; strict=False expands it
    to the tokens it touches. Overlapping spans (also after expansion) raise ValueError.
    """
    if tokens is None:
        tokens = tokenize(text)
    starts = {t.start: i for i, t in enumerate(tokens)}
    ends = {t.end: i for i, t in enumerate(tokens)}
    tags = ["O"] * len(tokens)
    items = sorted((_span_tuple(s) for s in spans), key=lambda s: (s[0], s[1]))
    prev = None
    for start, end, label in items:
        if not (0 <= start < end <= len(text)):
            raise ValueError(f"span [{start}, {end}) {label} is outside the text (length {len(text)}) or empty")
        if prev is not None and start < prev[1]:
            raise ValueError(f"spans [{prev[0]}, {prev[1]}) {prev[2]} and [{start}, {end}) {label} overlap")
        prev = (start, end, label)
        if start in starts and end in ends:
            first, last = starts[start], ends[end]
        elif strict:
            raise SpanAlignmentError(
                f"span [{start}, {end}) {label} {text[start:end]!r} is not on token boundaries; "
                f"nearest tokens: {_describe_neighbours(tokens, start, end)}"
            )
        else:
            touched = [i for i, t in enumerate(tokens) if t.start < end and t.end > start]
            if not touched:
                raise SpanAlignmentError(f"span [{start}, {end}) {label} covers no token (only whitespace)")
            first, last = touched[0], touched[-1]
        if any(tags[i] != "O" for i in range(first, last + 1)):
            raise ValueError(f"span [{start}, {end}) {label} overlaps another span once expanded to tokens")
        tags[first] = f"B-{label}"
        for i in range(first + 1, last + 1):
            tags[i] = f"I-{label}"
    return tags


def _describe_neighbours(tokens: Sequence[Token], start: int, end: int) -> str:
    near = [t for t in tokens if t.end > start - 1 and t.start < end + 1]
    return ", ".join(f"{t.text!r} [{t.start}, {t.end})" for t in near) or "none"


def bio_to_spans(text: str, tokens: Sequence[Token], tags: Sequence[str]) -> list[dict]:
    """Character spans from BIO tags over `tokens` (invalid sequences repaired)."""
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags; expected one tag per token")
    return [
        {"start": tokens[s].start, "end": tokens[e - 1].end, "label": t} for s, e, t in bio_to_token_spans(tags)
    ]


# ---------------------------------------------------------------------------------------------
# locating the teacher's mentions


def _mention_pattern(surface: str, flags: int) -> re.Pattern:
    # whitespace runs in the surface match any whitespace run in the text; lookahead finds overlaps
    body = r"\s+".join(re.escape(part) for part in surface.split())
    return re.compile(f"(?=({body}))", flags)


def _resolve_type(etype, labels: Sequence[str]) -> str | None:
    if not isinstance(etype, str):
        return None
    etype = etype.strip()
    if etype in labels:
        return etype
    folded = [lab for lab in labels if lab.casefold() == etype.casefold()]
    return folded[0] if len(folded) == 1 else None


def locate_mentions(
    text: str, mentions: Iterable[tuple[str, str]], labels: Sequence[str]
) -> tuple[list[dict], list[tuple[str, str, str]]]:
    """Place (surface, type) mentions in `text` as token-aligned character spans.

    Every token-aligned occurrence of each mention is a candidate: case-sensitive matches first,
    case-insensitive only when a mention has no case-sensitive aligned match. Candidates are accepted
    longest first, then earlier start, then first-listed mention; a candidate overlapping an accepted
    span is dropped (same start/end with another type: the first-listed type wins). A mention type
    matching a label only up to case is mapped to that label.

    Returns (spans sorted by start, rejections). A mention is rejected, with one of the REASON_*
    constants, when none of its occurrences is accepted; repeats of an identical mention are ignored.
    """
    labels = list(labels)
    tokens = tokenize(text)
    starts = {t.start for t in tokens}
    ends = {t.end for t in tokens}
    rejected: list[tuple[str, str, str]] = []
    candidates: list[tuple[int, int, int, str]] = []  # (start, end, mention index, label)
    per_mention: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for raw in mentions:
        surface, etype = raw
        mention_s = surface if isinstance(surface, str) else str(surface)
        type_s = etype if isinstance(etype, str) else str(etype)
        clean = mention_s.strip().strip(_QUOTES).strip() if isinstance(surface, str) else ""
        if not clean:
            rejected.append((mention_s, type_s, REASON_EMPTY))
            continue
        label = _resolve_type(etype, labels)
        if label is None:
            rejected.append((mention_s, type_s, REASON_BAD_TYPE))
            continue
        if (clean, label) in seen:
            continue
        seen.add((clean, label))
        found_any = False
        aligned: list[tuple[int, int]] = []
        for flags in (0, re.IGNORECASE):
            for m in _mention_pattern(clean, flags).finditer(text):
                found_any = True
                if m.start(1) in starts and m.end(1) in ends:
                    aligned.append((m.start(1), m.end(1)))
            if aligned:
                break
        if not aligned:
            rejected.append((mention_s, type_s, REASON_NOT_ALIGNED if found_any else REASON_NOT_IN_TEXT))
            continue
        idx = len(per_mention)
        per_mention.append((mention_s, type_s))
        candidates.extend((s, e, idx, label) for s, e in aligned)

    candidates.sort(key=lambda c: (-(c[1] - c[0]), c[0], c[2]))
    accepted: list[tuple[int, int, int, str]] = []
    for cand in candidates:
        s, e = cand[0], cand[1]
        if any(s < a[1] and a[0] < e for a in accepted):
            continue
        accepted.append(cand)
    winners = {a[2] for a in accepted}
    for idx, (mention_s, type_s) in enumerate(per_mention):
        if idx not in winners:
            rejected.append((mention_s, type_s, REASON_OVERLAP))
    spans = [{"start": s, "end": e, "label": lab} for s, e, _, lab in sorted(accepted, key=lambda a: (a[0], a[1]))]
    return spans, rejected


# ---------------------------------------------------------------------------------------------
# validation


def _span_problem(text: str, spans, labels: Sequence[str] | None, tokens: Sequence[Token] | None = None):
    """(index, field, message) for the first defect, or None."""
    if not isinstance(spans, (list, tuple)):
        return None, None, f"expected a list of spans, got {type(spans).__name__}"
    if tokens is None:
        tokens = tokenize(text)
    starts = {t.start for t in tokens}
    ends = {t.end for t in tokens}
    norm = []
    for i, span in enumerate(spans):
        if not isinstance(span, dict):
            return i, None, f"expected an object {{\"start\", \"end\", \"label\"}}, got {type(span).__name__}"
        for key in ("start", "end"):
            if key not in span:
                return i, key, "missing; expected an integer character offset"
            v = span[key]
            if isinstance(v, bool) or not isinstance(v, int):
                return i, key, f"expected an integer character offset, got {type(v).__name__}"
        if "label" not in span:
            return i, "label", "missing; expected an entity type"
        if not isinstance(span["label"], str):
            return i, "label", f"expected a string entity type, got {type(span['label']).__name__}"
        start, end, label = span["start"], span["end"], span["label"]
        if not (0 <= start <= len(text) and 0 <= end <= len(text)):
            return i, None, f"span [{start}, {end}) is outside the text (length {len(text)})"
        if start >= end:
            return i, None, f"span [{start}, {end}) is empty; expected start < end"
        if labels is not None and label not in labels:
            return i, "label", f"'{label}' is not a task entity type; expected one of: {', '.join(labels)}"
        if start not in starts or end not in ends:
            return i, None, (
                f"span [{start}, {end}) {text[start:end]!r} is not on token boundaries; "
                f"tokens there: {_describe_neighbours(tokens, start, end)}"
            )
        norm.append((start, end, label, i))
    norm.sort()
    for a, b in zip(norm, norm[1:]):
        if b[0] < a[1]:
            return b[3], None, (
                f"span [{b[0]}, {b[1]}) {b[2]} overlaps span {a[3]} [{a[0]}, {a[1]}) {a[2]}; expected non-overlapping spans"
            )
    return None


def validate_spans(text: str, spans, labels: Sequence[str] | None) -> str | None:
    """A reason string when any span is outside the text, empty, off token boundaries, overlapping
    another, or of a type not in `labels` (None: any type); None when all are valid."""
    problem = _span_problem(text, spans, list(labels) if labels is not None else None)
    if problem is None:
        return None
    i, field, msg = problem
    where = "" if i is None else f"span {i}" + (f" {field}" if field else "") + ": "
    return where + msg


# ---------------------------------------------------------------------------------------------
# reading and writing


def _entity_types(labels: Iterable[str] | None) -> list[str] | None:
    """Entity types from either plain types ['PER'] or BIO labels ['O', 'B-PER', 'I-PER']."""
    if labels is None:
        return None
    out: list[str] = []
    for lab in labels:
        if lab == "O":
            continue
        if len(lab) > 2 and lab[1] == "-" and lab[0] in "BIESLU":
            lab = lab[2:]
        if lab not in out:
            out.append(lab)
    return out


def _as_list(path: Path, lineno: int, obj: dict, field: str, what: str) -> list:
    value = obj[field]
    if isinstance(value, str):  # CSV cells carry JSON
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(path, f"expected a JSON list of {what}, got an unparseable string", line=lineno, field=field) from None
    if isinstance(value, tuple) or (value is not None and type(value).__name__ == "ndarray"):
        value = list(value)
    if not isinstance(value, list):
        raise InputError(path, f"expected a list of {what}, got {type(value).__name__}", line=lineno, field=field)
    return value


def _entities_sorted(entities: list[dict]) -> list[dict]:
    return sorted(entities, key=lambda e: (e["start"], e["end"], e["label"]))


def read_ner_rows(path: str | Path, labels: Iterable[str] | None = None, scheme: str = "BIO") -> list[dict]:
    """Read NER rows strictly from JSONL/CSV/Parquet (or CoNLL), each either {"text", "entities":
    [{"start","end","label"}]} or {"tokens", "tags"} (tags in `scheme`, converted to spans). Returns
    rows as {"text", "entities"} (entities sorted; other fields kept). Every defect raises InputError
    naming file, line and field; a text over MAX_TEXT_CHARS is one."""
    return [row for _, row in iter_ner_rows(path, labels, scheme)]


def iter_ner_rows(path: str | Path, labels: Iterable[str] | None = None, scheme: str = "BIO", *,
                  cut_into=None) -> Iterator[tuple[int, dict]]:
    """(line, row) for each NER row of a file, checked as `read_ner_rows` describes. Given a
    `cut_into` report (evokd.io.ReadReport), a text over MAX_TEXT_CHARS is not refused but cut
    (evokd.io.cut_text), and the entities ending beyond the cut are dropped; both are counted there."""
    from evokd.io import _clean_text, check_id, data_suffix, iter_rows

    path = Path(path)
    types = _entity_types(labels)
    sch = _norm_scheme(scheme)
    long_ok = cut_into is not None
    # CoNLL files are read sentence by sentence; their "line" in errors is the sentence number.
    source = enumerate(read_conll(path), start=1) if data_suffix(path) in CONLL_SUFFIXES else iter_rows(path)
    ids: dict = {}
    for lineno, obj in source:
        check_id(path, lineno, obj, ids)
        extra = {k: v for k, v in obj.items() if k not in ("text", "entities", "tokens", "tags")}
        if "text" in obj and obj["text"] is not None:
            if "entities" not in obj or obj["entities"] is None:
                raise InputError(path, "missing; expected a list of {\"start\", \"end\", \"label\"} (may be empty)", line=lineno, field="entities")
            raw_text = obj["text"]
            text = _clean_text(path, lineno, raw_text, long_ok=long_ok)
            lead = len(raw_text) - len(raw_text.lstrip())
            entities = _as_list(path, lineno, obj, "entities", "entity objects")
            entities = [dict(e) if isinstance(e, dict) else e for e in entities]
            problem = _span_problem(raw_text, entities, types)
            if problem is not None:
                i, key, msg = problem
                field = "entities" if i is None else f"entities[{i}]" + (f".{key}" if key else "")
                raise InputError(path, msg, line=lineno, field=field)
            ents = [{"start": e["start"] - lead, "end": e["end"] - lead, "label": e["label"]} for e in entities]
            text, ents = _fit(text, ents, cut_into)
            yield lineno, {**extra, "text": text, "entities": _entities_sorted(ents)}
        elif ("tokens" in obj and obj["tokens"] is not None) or ("tags" in obj and obj["tags"] is not None):
            for key in ("tokens", "tags"):
                if key not in obj:
                    raise InputError(path, f"missing; rows with '{'tags' if key == 'tokens' else 'tokens'}' need '{key}' too", line=lineno, field=key)
            tokens = _as_list(path, lineno, obj, "tokens", "token strings")
            tags = _as_list(path, lineno, obj, "tags", "tag strings")
            if not tokens:
                raise InputError(path, "empty text; expected at least one token", line=lineno, field="tokens")
            for i, tok in enumerate(tokens):
                if not isinstance(tok, str) or not tok.strip() or any(c.isspace() for c in tok):
                    raise InputError(path, f"token {i} is {tok!r}; expected a non-empty string without whitespace", line=lineno, field="tokens")
            if len(tokens) != len(tags):
                raise InputError(path, f"{len(tags)} tags for {len(tokens)} tokens; expected one tag per token", line=lineno, field="tags")
            try:
                example = tokens_to_example(tokens, tags, sch)
            except ValueError as exc:
                raise InputError(path, str(exc), line=lineno, field="tags") from None
            _clean_text(path, lineno, example["text"], field="tokens", long_ok=long_ok)
            if types is not None:
                for e in example["entities"]:
                    if e["label"] not in types:
                        raise InputError(path, f"'{e['label']}' is not a task entity type; expected one of: {', '.join(types)}", line=lineno, field="tags")
            text, ents = _fit(example["text"], example["entities"], cut_into)
            yield lineno, {**extra, "text": text, "entities": ents}
        elif "text" in obj:
            _clean_text(path, lineno, obj["text"])  # raises: null text
        else:
            raise InputError(path, "missing; expected either 'text' + 'entities' or 'tokens' + 'tags'", line=lineno, field="text")


def _fit(text: str, entities: list[dict], cut_into) -> tuple[str, list[dict]]:
    """(text, entities), cut to MAX_TEXT_CHARS (evokd.io.cut_text) when over it, keeping the entities
    wholly inside the cut; the cut and the dropped entities are counted in `cut_into`."""
    from evokd.io import MAX_TEXT_CHARS, cut_text

    if len(text) <= MAX_TEXT_CHARS:
        return text, entities
    text = cut_text(text)
    kept = [e for e in entities if e["end"] <= len(text)]
    cut_into.texts_cut += 1
    cut_into.entities_dropped += len(entities) - len(kept)
    return text, kept


_CONLL_PREFIXES = "BIESLU"


def read_conll(path: str | Path) -> list[dict]:
    """CoNLL columns: one token per line, token in the first column, tag in the last; blank lines
    separate sentences; -DOCSTART- lines are skipped. Returns [{"tokens", "tags"}]."""
    from evokd.io import _decode

    path = Path(path)
    rows: list[dict] = []
    tokens: list[str] = []
    tags: list[str] = []
    for lineno, line in enumerate(_decode(path).splitlines(), start=1):
        cols = line.split()
        if not cols:
            if tokens:
                rows.append({"tokens": tokens, "tags": tags})
                tokens, tags = [], []
            continue
        if cols[0] == "-DOCSTART-":
            continue
        if len(cols) < 2:
            raise InputError(path, f"{line.strip()!r} has one column; expected 'TOKEN ... TAG' separated by whitespace", line=lineno)
        tag = cols[-1]
        prefix, sep, etype = tag.partition("-")
        if tag != "O" and (not sep or not etype or prefix not in _CONLL_PREFIXES):
            raise InputError(path, f"tag {tag!r} is not 'O' or PREFIX-TYPE with PREFIX in B, I, E, S, L, U", line=lineno)
        tokens.append(cols[0])
        tags.append(tag)
    if tokens:
        rows.append({"tokens": tokens, "tags": tags})
    return rows


def write_conll(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows ({"tokens", "tags"}, or {"text", "entities"} tagged over `tokenize`) as two-column
    CoNLL ("TOKEN TAG", blank line between sentences), atomically. Returns the number of sentences."""
    path = Path(path)
    chunks: list[str] = []
    for n, row in enumerate(rows):
        if "tokens" in row:
            tokens, tags = list(row["tokens"]), list(row["tags"])
        else:
            toks = tokenize(row["text"])
            tokens, tags = [t.text for t in toks], spans_to_bio(row["text"], row["entities"], toks)
        if len(tokens) != len(tags):
            raise ValueError(f"row {n}: {len(tokens)} tokens but {len(tags)} tags")
        if not tokens:
            raise ValueError(f"row {n}: no tokens; CoNLL cannot hold an empty sentence")
        for tok, tag in zip(tokens, tags):
            if not tok or any(c.isspace() for c in tok) or not tag or any(c.isspace() for c in tag):
                raise ValueError(f"row {n}: token {tok!r} / tag {tag!r} is empty or contains whitespace")
            if tok == "-DOCSTART-":
                raise ValueError(f"row {n}: token '-DOCSTART-' would be read back as a document marker")
        chunks.append("".join(f"{tok} {tag}\n" for tok, tag in zip(tokens, tags)))
    write_text_atomic(path, "\n".join(chunks))
    return len(chunks)
