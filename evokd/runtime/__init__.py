"""Deployment runtime: run a saved student without the code that trained it.

This package is what `evokd predict` and shipped students depend on. It imports json, pathlib,
numpy and onnxruntime, never scikit-learn, torch or `evokd.students` (students import it, to
check their exports against it, never the other way round). `load_student(DIR)` reads
`student.json` and returns the runtime its "runtime" and "kind" name:

- onnxruntime (`onnx.py`): `model.onnx`, `student.json` (how to feed and read the graph) and
  `labels.json` (labels in probability-column order). Transformer students (input "token_ids",
  e.g. `minilm`) also ship `tokenizer.json`, read with the `tokenizers` package, imported only
  when such a student is loaded. NER taggers (kind "ner", input "tokens") also ship `words.json`
  and `chars.json` (their vocabularies); texts are tokenised with `evokd.ner.tokenize` (spaCy's
  rule-based tokenizer), imported only when such a student tags texts. The token encoding and
  the tag decoding (`tags.py`) are the ones the training side (`evokd.students.tagger`) uses too.
- spaCy (`spacy.py`): the `spacy-ner` and `spacy-textcat` students ship a spaCy pipeline folder
  (and a wheel); spaCy is imported only when such a student is loaded.

Every runtime's `predict` takes a list of strings and checks it with `common.check_texts`, the
one input check students use too.
"""

import json
from pathlib import Path

from evokd.runtime.common import (
    LABELS_FILE, META_FILE, MODEL_FILE, StudentLoadError, TextsError, check_texts, first_line, read_json,
)
from evokd.runtime.onnx import (
    INPUT_ENCODERS, PROBABILITIES_OUTPUT, TOKEN_INPUTS, TOKENIZER_FILE, RuntimeStudent, RuntimeTagger, TextFeeds,
    TokenIdFeeds, load_classifier, load_tagger, make_session,
)
from evokd.runtime.spacy import (
    PIPELINE_DIR, RUNTIME_NAME as SPACY_RUNTIME, SpacyNerRuntime, SpacyTextcatRuntime, load_spacy, load_spacy_ner,
    load_spacy_textcat, spans_of,
)
from evokd.runtime.tags import (
    CASE_LOWER, CASE_MIXED, CASE_NO_LETTERS, CASE_TITLE, CASE_UPPER, CHARS_FILE, N_CASES, PAD_ID, TAGGER_INPUTS,
    TAGGER_OUTPUT, UNK_ID, WORDS_FILE, batches_by_length, case_id, check_token_lists, decode_tags, encode_tokens,
    entities_from_tags, normalise_word,
)

ONNX_RUNTIME = "onnxruntime"  # student.json "runtime" of a student shipped as model.onnx
SUPPORTED_KINDS = ("classification", "ner")


_ONNX_LOADERS = {"classification": load_classifier, "ner": load_tagger}  # task kind -> its ONNX student loader

def load_student(student_dir, intra_op_num_threads: int = 1):
    """Load a student directory written by a student's `save` / `evokd distill`: a RuntimeStudent,
    RuntimeTagger, SpacyNerRuntime or SpacyTextcatRuntime; StudentLoadError if it is not one."""
    student_dir = Path(student_dir)
    if not student_dir.is_dir():
        raise StudentLoadError(
            f"{student_dir}: not a directory; expected a student directory with "
            f"{MODEL_FILE}, {META_FILE} and {LABELS_FILE}"
        )
    meta_path = student_dir / META_FILE
    meta = read_json(meta_path, 'a JSON object with "student", "kind" and "input"')
    if not isinstance(meta, dict) or not all(k in meta for k in ("student", "kind", "input")):
        raise StudentLoadError(
            f'{meta_path}: expected a JSON object with "student", "kind" and "input", '
            f"got {json.dumps(meta)[:80]}"
        )
    if meta["kind"] not in SUPPORTED_KINDS:
        raise StudentLoadError(
            f"{meta_path}: unknown kind {meta['kind']!r}; expected one of: {', '.join(SUPPORTED_KINDS)}"
        )
    if meta.get("runtime") == SPACY_RUNTIME:  # spaCy students ship a pipeline (and a wheel), not an ONNX graph
        return load_spacy(student_dir, meta)
    return _ONNX_LOADERS[meta["kind"]](student_dir, meta, intra_op_num_threads)


__all__ = [
    "CASE_LOWER", "CASE_MIXED", "CASE_NO_LETTERS", "CASE_TITLE", "CASE_UPPER", "CHARS_FILE", "INPUT_ENCODERS",
    "LABELS_FILE", "META_FILE", "MODEL_FILE", "N_CASES", "ONNX_RUNTIME", "PAD_ID", "PIPELINE_DIR",
    "PROBABILITIES_OUTPUT", "SPACY_RUNTIME", "SUPPORTED_KINDS", "TAGGER_INPUTS", "TAGGER_OUTPUT", "TOKENIZER_FILE",
    "TOKEN_INPUTS", "UNK_ID", "WORDS_FILE", "RuntimeStudent", "RuntimeTagger", "SpacyNerRuntime",
    "SpacyTextcatRuntime", "StudentLoadError", "TextFeeds", "TextsError", "TokenIdFeeds", "batches_by_length",
    "case_id", "check_texts", "check_token_lists", "decode_tags", "encode_tokens", "entities_from_tags",
    "first_line", "load_classifier", "load_spacy", "load_spacy_ner", "load_spacy_textcat", "load_student",
    "load_tagger", "make_session", "normalise_word", "read_json", "spans_of",
]
