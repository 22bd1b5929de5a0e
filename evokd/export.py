"""`evokd export`: a run's rows in the formats other tools read.

JSONL, CSV and Parquet hold the same columns as `dataset.jsonl`; CoNLL (BIO, NER only) and spaCy
`DocBin` are what NER and spaCy training read; `hf` is a folder for Hugging Face `datasets`:
`save_to_disk` layout (for `datasets.load_from_disk`) when `datasets` is installed (extra `[hf]`),
otherwise a dataset card plus one Parquet file that `datasets.load_dataset(FOLDER)` reads with the
same features. Every output is built under a temporary name beside `--out` and renamed into place,
so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import csv
import io as _io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

from evokd.errors import EvokdError
from evokd.io import write_jsonl_atomic, write_text_atomic
from evokd.run_dir import dataset_row, open_run
from evokd.task_kinds import kind_rules

FORMATS = ("jsonl", "csv", "parquet", "conll", "spacy", "hf")
SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".conll": "conll",
                  ".iob": "conll", ".bio": "conll", ".spacy": "spacy"}
SOURCES = ("seed", "generated", "pool")
TABULAR = ("jsonl", "csv", "parquet", "hf")  # formats that can hold rejected rows (no final label)
HF_DATA_FILE = "data/train-00000-of-00001.parquet"


# ---------------------------------------------------------------------------------------------
# writing under a temporary name


@contextlib.contextmanager
def atomic_target(path: str | Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write a file (or a folder) into; on success it
    replaces `path`, on any error it is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod((0o777 if directory else 0o666) & ~umask)  # mkstemp/mkdtemp create private files
        if directory and path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)


# ---------------------------------------------------------------------------------------------
# options


def resolve_format(fmt: str | None, out: Path) -> str:
    """The export format: `--format` if given, else inferred from the suffix of `--out`."""
    inferred = SUFFIX_FORMATS.get(out.suffix.lower())
    if fmt is None:
        if inferred is None:
            raise EvokdError(f"--out {out}: cannot tell the format from the name; add --format ({', '.join(FORMATS)})")
        return inferred
    if fmt not in FORMATS:
        raise EvokdError(f"--format {fmt!r}: expected one of: {', '.join(FORMATS)}")
    if inferred is not None and inferred != fmt:
        raise EvokdError(f"--out {out}: a '{out.suffix}' name is for --format {inferred}, not {fmt}; "
                         f"pick a name ending in {_suffix_hint(fmt)}")
    return fmt


def _suffix_hint(fmt: str) -> str:
    if fmt == "hf":
        return "no suffix (hf writes a folder)"
    return " or ".join(s for s, f in SUFFIX_FORMATS.items() if f == fmt)


def parse_rounds(values: Iterable[str]) -> set[int] | None:
    """'3' or '1-3' per value (the option may repeat); None when no value was given."""
    values = list(values)
    if not values:
        return None
    out: set[int] = set()
    for value in values:
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(value))
        if m is None:
            raise EvokdError(f"--round {value!r}: expected a round number like 3 or a range like 1-3")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise EvokdError(f"--round {value!r}: the range is empty; expected LOW-HIGH with LOW <= HIGH")
        out.update(range(lo, hi + 1))
    return out


# ---------------------------------------------------------------------------------------------
# rows


def select_rows(run_dir: str | Path, *, sources: Iterable[str] = (), rounds: set[int] | None = None,
                include_rejected: bool = False) -> tuple[dict, list[dict]]:
    """(run info, rows) of a run after the filters; no matching row is an error naming what exists."""
    sources = list(sources)
    for s in sources:
        if s not in SOURCES:
            raise EvokdError(f"--source {s!r}: expected one of: {', '.join(SOURCES)}")
    with open_run(run_dir) as store:
        info = store.run_info()
        if info is None:
            raise EvokdError(f"{store.path}: the run has no committed round yet; nothing to export")
        samples = store.samples(status=None if include_rejected else "accepted")
    picked = [s for s in samples
              if (not sources or s["source"] in sources) and (rounds is None or s["round"] in rounds)]
    if not picked:
        present_rounds = sorted({s["round"] for s in samples})
        present_sources = sorted({s["source"] for s in samples})
        raise EvokdError(
            f"{run_dir}: no rows match the filters (--source {','.join(sources) or 'any'}, --round "
            f"{_describe_rounds(rounds)}); the run has rounds {_describe_rounds(set(present_rounds))} "
            f"and sources {', '.join(present_sources) or 'none'}"
        )
    return info, [dataset_row(s, info["task_kind"], include_status=include_rejected) for s in picked]


def _describe_rounds(rounds: set[int] | None) -> str:
    if rounds is None:
        return "any"
    if not rounds:
        return "none"
    r = sorted(rounds)
    return f"{r[0]}-{r[-1]}" if r == list(range(r[0], r[-1] + 1)) and len(r) > 1 else ",".join(map(str, r))


def labels_of(info: dict) -> list[str]:
    return [lab["name"] for lab in info["task"]["labels"]]


# ---------------------------------------------------------------------------------------------
# formats


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def write_csv(path: Path, rows: list[dict]) -> None:
    """One header row; lists (entities) as JSON in their cell; missing values as empty cells."""
    buf = _io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    columns = list(rows[0])
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row[c]) for c in columns])
    write_text_atomic(path, buf.getvalue())


def _span_type(with_text: bool = False):
    """Entity spans; the student's spans also carry their surface `text` (the students' predict contract)."""
    import pyarrow as pa

    fields = [("start", pa.int64()), ("end", pa.int64()), ("label", pa.string())]
    return pa.list_(pa.struct(fields + [("text", pa.string())] if with_text else fields))


def arrow_schema(rows: list[dict]):
    """An explicit Arrow schema, so empty or all-null columns keep their types."""
    import pyarrow as pa

    types = {"id": pa.int64(), "round": pa.int64(), "student_score": pa.float64(), "teacher_confidence": pa.float64(),
             "entities": _span_type(),
             "student_entities": _span_type(with_text=True), "label_notes": pa.list_(pa.list_(pa.string())),
             "tokens": pa.list_(pa.string()), "ner_tags": pa.list_(pa.int64())}
    return pa.schema([(c, types.get(c, pa.string())) for c in rows[0]])


def write_parquet(path: Path, rows: list[dict], metadata: dict | None = None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(rows)
    if metadata:
        schema = schema.with_metadata({k: json.dumps(v) for k, v in metadata.items()})
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_target(path) as tmp:
        pq.write_table(table, tmp)


def write_conll_rows(path: Path, rows: list[dict]) -> None:
    from evokd.ner import write_conll

    try:
        write_conll(path, rows)
    except ValueError as exc:
        msg = str(exc)
        m = re.match(r"row (\d+): (.*)", msg)
        if m:
            msg = f"sample {rows[int(m.group(1))]['id']}: {m.group(2)}"
        raise EvokdError(f"{path}: cannot write CoNLL ({msg}); --format jsonl or spacy keeps such rows") from None


def _doc_cats(doc, row: dict, labels: list[str], path: Path, language: str) -> None:
    """A classification row's answer on its spaCy doc: `doc.cats`, 1.0 for the label and 0.0 for the others."""
    doc.cats = {lab: float(lab == row["label"]) for lab in labels}


def _doc_ents(doc, row: dict, labels: list[str], path: Path, language: str) -> None:
    """An NER row's answer on its spaCy doc: `doc.ents`, each on spaCy's token boundaries."""
    spans = []
    for e in row["entities"]:
        span = doc.char_span(e["start"], e["end"], label=e["label"], alignment_mode="strict")
        if span is None:
            raise EvokdError(f"{path}: sample {row['id']}: entity [{e['start']}, {e['end']}) {e['label']} is not "
                             f"on spaCy '{language}' token boundaries; --format jsonl keeps it")
        spans.append(span)
    doc.ents = spans


_WRITE_DOC = {"classification": _doc_cats, "ner": _doc_ents}  # a row's answer on its spaCy doc, by task kind


def write_spacy(path: Path, rows: list[dict], labels: list[str], language: str, kind: str) -> None:
    """A spaCy DocBin: NER rows as `doc.ents`, classification rows as `doc.cats` (1.0 for the label,
    0.0 for the others); id, source, round and intent in `doc.user_data`."""
    import spacy
    from spacy.tokens import DocBin

    try:
        nlp = spacy.blank(language)
    except (ImportError, OSError, KeyError):
        nlp = spacy.blank("en")
    write_doc = _WRITE_DOC[kind]
    docs = DocBin(store_user_data=True)
    for row in rows:
        doc = nlp.make_doc(row["text"])
        write_doc(doc, row, labels, path, language)
        doc.user_data.update({k: row[k] for k in ("id", "source", "round", "intent")})
        docs.add(doc)
    write_bytes_atomic(path, docs.to_bytes())


# Hugging Face ---------------------------------------------------------------------------------


def bio_tag_names(types: list[str]) -> list[str]:
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def _value(dtype: str) -> dict:
    return {"dtype": dtype, "_type": "Value"}


# the columns the hf folder adds to a kind's rows: NER's tokens and BIO tags
_HF_EXTRA_FEATURES = {
    "classification": lambda labels: {},
    "ner": lambda labels: {"tokens": {"feature": _value("string"), "_type": "List"},
                           "ner_tags": {"feature": {"names": bio_tag_names(labels), "_type": "ClassLabel"},
                                        "_type": "List"}},
}


def hf_features(rows: list[dict], labels: list[str], kind: str) -> dict:
    """`datasets.Features.to_dict()` form: labels (NER: BIO tags) as ClassLabel, the rest as values."""
    value = _value
    span = {"start": value("int64"), "end": value("int64"), "label": value("string")}
    features = {}
    for col in rows[0]:
        if col == "label":
            features[col] = {"names": list(labels), "_type": "ClassLabel"}
        elif col == "entities":
            features[col] = {"feature": span, "_type": "List"}
        elif col == "student_entities":
            features[col] = {"feature": {**span, "text": value("string")}, "_type": "List"}
        elif col == "label_notes":
            features[col] = {"feature": {"feature": value("string"), "_type": "List"}, "_type": "List"}
        elif col in ("id", "round"):
            features[col] = value("int64")
        elif col in ("student_score", "teacher_confidence"):
            features[col] = value("float64")
        else:
            features[col] = value("string")
    features.update(_HF_EXTRA_FEATURES[kind](labels))
    return features


def _hf_label_index(labels: list[str]) -> Callable[[dict], None]:
    """Classification: the label as its ClassLabel integer (a rejected row keeps None)."""
    index = {lab: i for i, lab in enumerate(labels)}

    def convert(r: dict) -> None:
        if r.get("label") is not None:
            r["label"] = index[r["label"]]
    return convert


def _hf_bio_tags(labels: list[str]) -> Callable[[dict], None]:
    """NER: the text's `tokens` and its entities as BIO `ner_tags` integers (a rejected row: None)."""
    from evokd.ner import spans_to_bio, tokenize

    tag_index = {tag: i for i, tag in enumerate(bio_tag_names(labels))}

    def convert(r: dict) -> None:
        toks = tokenize(r["text"])
        r["tokens"] = [t.text for t in toks]
        r["ner_tags"] = (None if r["entities"] is None
                         else [tag_index[t] for t in spans_to_bio(r["text"], r["entities"], toks)])
    return convert


_HF_CONVERT = {"classification": _hf_label_index, "ner": _hf_bio_tags}  # a row's hf columns, by task kind


def hf_rows(rows: list[dict], labels: list[str], kind: str) -> list[dict]:
    """Rows with ClassLabel columns as integers; NER rows also get `tokens` and BIO `ner_tags`."""
    convert = _HF_CONVERT[kind](labels)
    out = []
    for row in rows:
        r = dict(row)
        convert(r)
        out.append(r)
    return out


def has_hf_datasets() -> bool:
    """True when the Hugging Face `datasets` library (not just a folder named datasets) is importable."""
    try:
        import datasets
    except ImportError:
        return False
    return hasattr(datasets, "Dataset") and hasattr(datasets, "Features")


# what the dataset card says about a kind's rows: (Hub task category, columns)
_CARD = {
    "classification": ("text-classification", "`text`, `label` (ClassLabel)"),
    "ner": ("token-classification", "`text`, `entities` (character spans `{start, end, label}`), `tokens` and "
                                    "`ner_tags` (BIO over spaCy's tokenizer)"),
}


def dataset_card(info: dict, rows: list[dict], kind: str, layout: str) -> str:
    """README.md for the hf folder: YAML metadata for the Hub, then what the data is and how it was made."""
    import yaml

    task = info["task"]
    category, columns = _CARD[kind]
    meta = {
        "pretty_name": task["name"],
        "language": [task.get("language") or "en"],
        "task_categories": [category],
        "tags": ["evokd", "synthetic", "knowledge-distillation"],
        "size_categories": ["n<1K" if len(rows) < 1000 else "1K<n<10K" if len(rows) < 10_000 else "10K<n<100K"],
    }
    if layout == "parquet":
        meta["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": HF_DATA_FILE}]}]
    by_source: dict[str, int] = {}
    for r in rows:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
    labels = "\n".join(f"- `{lab['name']}`: {lab.get('description') or ''}".rstrip(": ") for lab in task["labels"])
    load = ("```python\nfrom datasets import load_from_disk\nds = load_from_disk(\"THIS_FOLDER\")\n```"
            if layout == "arrow" else
            "```python\nfrom datasets import load_dataset\nds = load_dataset(\"THIS_FOLDER\", split=\"train\")\n```")
    return (
        "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n"
        f"# {task['name']}\n\n{task['description']}\n\n"
        f"Made with evokd (evolving knowledge distillation): an LLM teacher (`{info['teacher']}`) wrote and labeled "
        "the `generated` rows, aiming each round at what a small student model got wrong; `seed` rows are the "
        "user's labeled examples. Teacher labels are not human-checked.\n\n"
        f"## Labels\n\n{labels}\n\n"
        f"## Rows\n\n{len(rows)} rows: " + ", ".join(f"{n} {s}" for s, n in sorted(by_source.items())) + ".\n\n"
        f"Columns: {columns}; `source`, `round` and `intent` (`hard`/`easy`) say where a row came from, and "
        "the student's prediction made before it trained on the row is kept beside the label.\n\n"
        f"## Load\n\n{load}\n"
    )


def write_hf(path: Path, info: dict, rows: list[dict], labels: list[str], kind: str, *, use_datasets: bool | None = None) -> str:
    """The hf folder; returns its layout: 'arrow' (save_to_disk) or 'parquet' (card + Parquet)."""
    if use_datasets is None:
        use_datasets = has_hf_datasets()
    features = hf_features(rows, labels, kind)
    data = hf_rows(rows, labels, kind)
    layout = "arrow" if use_datasets else "parquet"
    with atomic_target(path, directory=True) as tmp:
        if use_datasets:
            from datasets import Dataset, Features, disable_progress_bars

            disable_progress_bars()
            Dataset.from_list(data, features=Features.from_dict(features)).save_to_disk(str(tmp))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = pa.schema([f.with_type(pa.int64()) if f.name == "label" else f for f in arrow_schema(data)],
                               metadata={"huggingface": json.dumps({"info": {"features": features}})})
            (tmp / "data").mkdir()
            pq.write_table(pa.Table.from_pylist(data, schema=schema), tmp / HF_DATA_FILE)
        (tmp / "README.md").write_text(dataset_card(info, rows, kind, layout), encoding="utf-8")
    return layout


# ---------------------------------------------------------------------------------------------
# the command


def export_run(run_dir: str | Path, out: str | Path, fmt: str | None = None, *, sources: Iterable[str] = (),
               rounds: set[int] | None = None, include_rejected: bool = False,
               progress: Callable[[str], None] = lambda msg: None) -> dict:
    """Write a run's rows to `out` in `fmt`; returns a summary (format, path, rows, by source/status)."""
    out = Path(out)
    fmt = resolve_format(fmt, out)
    if include_rejected and fmt not in TABULAR:
        raise EvokdError(f"--include-rejected: rejected rows have no final labels, which {fmt} cannot leave out; "
                         f"use --format {', '.join(TABULAR)}")
    if fmt != "hf" and out.is_dir():
        raise EvokdError(f"--out {out}: is a directory; --format {fmt} writes a file")
    if fmt == "hf" and out.exists() and not out.is_dir():
        raise EvokdError(f"--out {out}: is a file; --format hf writes a folder")
    info, rows = select_rows(run_dir, sources=sources, rounds=rounds, include_rejected=include_rejected)
    kind = info["task_kind"]
    labels = labels_of(info)
    if fmt == "conll" and kind_rules(kind).one_label_per_text:  # CoNLL holds token tags, not one label per text
        raise EvokdError(f"--format conll: the run's task '{info['task_name']}' is {kind}; CoNLL holds NER tags "
                         "(use jsonl, csv, parquet, spacy or hf)")
    progress(f"exporting {len(rows)} rows as {fmt}")
    summary = {"format": fmt, "out": str(out), "rows": len(rows), "task": info["task_name"], "kind": info["task_kind"]}
    if fmt == "jsonl":
        write_jsonl_atomic(out, rows)
    elif fmt == "csv":
        write_csv(out, rows)
    elif fmt == "parquet":
        write_parquet(out, rows)
    elif fmt == "conll":
        write_conll_rows(out, rows)
    elif fmt == "spacy":
        write_spacy(out, rows, labels, info["task"].get("language") or "en", kind)
    else:
        summary["layout"] = write_hf(out, info, rows, labels, kind)
    by: dict[str, int] = {}
    for r in rows:
        key = r["source"] if "status" not in r else f"{r['source']} {r['status']}"
        by[key] = by.get(key, 0) + 1
    summary["by_source"] = by
    return summary
