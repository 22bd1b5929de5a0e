"""The spaCy side of the runtime: saved `spacy-ner` and `spacy-textcat` students (student.json
"runtime": "spacy"), whose folder holds the pipeline as `nlp.to_disk` wrote it. The pipeline is
loaded with `spacy.load(DIR / "pipeline")`, so the wheel beside it need not be installed; spaCy
itself is imported only when such a student is loaded.
"""

import json
from pathlib import Path

import numpy as np

from evokd.runtime.common import LABELS_FILE, META_FILE, StudentLoadError, check_texts, first_line

RUNTIME_NAME = "spacy"  # student.json "runtime" of a spaCy student
PIPELINE_DIR = "pipeline"  # student.json "pipeline": the folder nlp.to_disk wrote


def spans_of(doc) -> list[dict]:
    """{"start", "end", "label", "text"} for each entity of a spaCy Doc, whitespace trimmed."""
    text = doc.text
    out = []
    for ent in doc.ents:
        start, end = ent.start_char, ent.end_char
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            out.append({"start": start, "end": end, "label": ent.label_, "text": text[start:end]})
    return out


class SpacyNerRuntime:
    """A saved spacy-ner student loaded with `spacy.load` (the wheel need not be installed)."""

    def __init__(self, nlp, labels: list[str], meta: dict | None = None, batch_size: int = 256):
        self.nlp = nlp
        self.labels = list(labels)
        self.meta = dict(meta or {})
        self.batch_size = batch_size

    def predict(self, texts: list[str]) -> list[dict]:
        """One {"entities": [{"start", "end", "label", "text"}, ...]} per text (character offsets)."""
        texts = check_texts(texts)
        return [{"entities": spans_of(doc)} for doc in self.nlp.pipe(texts, batch_size=self.batch_size)]


class SpacyTextcatRuntime:
    """A saved spacy-textcat student loaded with `spacy.load` (the wheel need not be installed)."""

    def __init__(self, nlp, labels: list[str], meta: dict | None = None, batch_size: int = 256):
        self.nlp = nlp
        self.labels = list(labels)
        self.meta = dict(meta or {})
        self.batch_size = batch_size

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities, one row per text, columns in `self.labels` order."""
        texts = check_texts(texts)
        rows = [[doc.cats[label] for label in self.labels] for doc in self.nlp.pipe(texts, batch_size=self.batch_size)]
        return np.array(rows, dtype=np.float32).reshape(len(texts), len(self.labels))

    def predict(self, texts: list[str]) -> list[dict]:
        """One {"label", "score"} per text; score is the probability of that label."""
        proba = self.predict_proba(texts)
        return [{"label": self.labels[j], "score": float(proba[i, j])} for i, j in enumerate(proba.argmax(axis=1))]


def _load_pipeline(student_dir: Path, meta: dict, component: str, a_component: str):
    """spacy.load of the student's pipeline folder, which must hold `component` (`a_component`: "a 'textcat'")."""
    rel = meta.get("pipeline")
    if not isinstance(rel, str) or not rel:
        raise StudentLoadError(
            f"{student_dir / META_FILE}: expected a \"pipeline\" directory name for a spaCy student, got {rel!r}"
        )
    pipeline_dir = student_dir / rel
    if not (pipeline_dir / "config.cfg").is_file() or not (pipeline_dir / "meta.json").is_file():
        raise StudentLoadError(
            f"{pipeline_dir}: not a spaCy pipeline directory; expected config.cfg and meta.json written by nlp.to_disk"
        )
    try:
        import spacy

        nlp = spacy.load(pipeline_dir)
    except ImportError:
        raise StudentLoadError(
            f"{student_dir}: this {meta.get('student', 'spaCy')} student needs spaCy (pip install spacy)"
        ) from None
    except Exception as exc:  # spaCy/thinc/srsly raise many unrelated types for damaged files
        raise StudentLoadError(f"{pipeline_dir}: expected a spaCy pipeline spacy.load can read ({first_line(exc)})") from exc
    if component not in nlp.pipe_names:
        raise StudentLoadError(f"{pipeline_dir}: expected a pipeline with {a_component} component, found {nlp.pipe_names}")
    return nlp


def _read_labels(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StudentLoadError(f"{path}: not valid JSON ({exc}); expected a JSON list of {what}") from exc


def load_spacy_ner(student_dir, meta: dict) -> SpacyNerRuntime:
    """Load a spacy-ner student's `student_dir / meta["pipeline"]`; StudentLoadError if missing or corrupt."""
    student_dir = Path(student_dir)
    nlp = _load_pipeline(student_dir, meta, "ner", "an 'ner'")
    labels = meta.get("entity_types")
    labels_path = student_dir / LABELS_FILE
    if labels_path.is_file():
        labels = _read_labels(labels_path, "entity types")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        labels = list(nlp.get_pipe("ner").labels)
    return SpacyNerRuntime(nlp, labels, meta)


def load_spacy_textcat(student_dir, meta: dict) -> SpacyTextcatRuntime:
    """Load a spacy-textcat student's `student_dir / meta["pipeline"]`; StudentLoadError if missing or corrupt."""
    student_dir = Path(student_dir)
    nlp = _load_pipeline(student_dir, meta, "textcat", "a 'textcat'")
    known = list(nlp.get_pipe("textcat").labels)
    labels_path = student_dir / LABELS_FILE
    labels = _read_labels(labels_path, "labels") if labels_path.is_file() else known
    if not isinstance(labels, list) or sorted(labels) != sorted(known):
        raise StudentLoadError(f"{labels_path}: expected the pipeline's labels {known}, got {json.dumps(labels)[:80]}")
    return SpacyTextcatRuntime(nlp, labels, meta)


def load_spacy(student_dir, meta: dict) -> SpacyNerRuntime | SpacyTextcatRuntime:
    """A spaCy student's folder (student.json already read into `meta`), by its kind."""
    return {"classification": load_spacy_textcat, "ner": load_spacy_ner}[meta["kind"]](student_dir, meta)
