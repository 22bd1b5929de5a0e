"""What differs between task kinds, in one object per kind: classification and NER.

A task's kind (`TaskSpec.kind`, "classification" or "ner") decides how its rows are read, what a
student's answer looks like, how two answers are compared, which metric is the headline and
which student is trained by default. Code that works on any task asks `task.rules` (or
`kind_rules(kind)` when it holds only the kind's name) instead of branching on the kind.

To add a task kind: subclass `TaskKind` here and register it in `KINDS`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from evokd.errors import InputError, RunError
from evokd.metrics import classification_report, confusion_pairs, entity_report


@dataclass(frozen=True)
class LabelErrors:
    """How the student did on one label of a batch: `wrong` of `total` (NER: entities missed of the
    entities present, with the student's precision on that type)."""

    label: str
    wrong: int
    total: int
    precision: float | None = None


@dataclass(frozen=True)
class ErrorStats:
    """The student's errors on a batch, as numbers; the teacher's prompts put them into words
    (`evokd.teacher.wording.error_stats_text`)."""

    per_label: list[LabelErrors]
    confusions: list[tuple[str, str, int]]  # (true label, predicted label, count), most frequent first
    unit: str  # what `wrong` counts: "wrong" (texts) or "entities missed"


class TaskKind:
    """The rules of one task kind. Subclasses set the class attributes and implement the methods."""

    name: str
    target_key: str  # the field of a labeled row holding its answer
    pred_key: str  # the store's column holding the student's answer before it trained on the row
    no_answer: Any  # the answer that stands for "none" in a comparison (a teacher that did not answer)
    headline: tuple[str, str]  # (rounds column, display name) of the headline eval metric
    report_headline: str  # the key of a `report` holding the headline metric
    eval_columns: tuple[str, ...]  # the round record's eval columns this kind fills, headline first
    selection_metric: str  # what `distill --student auto` selects on (a key of `score`)
    bench_metrics: tuple[str, ...]  # the scores `evokd bench` reports, headline first
    answer_name: str  # what one answer is called in tables: "label" / "entity type"
    answers_name: str  # what the training data's answers are counted as: "label" / "entities by type"
    row_format: str  # the rows a data file of this kind holds, as an error message says it
    default_student: str  # what `generate`, `distill` and `optimize` train when no --student is given
    legacy_student: str  # what runs made before the default was recorded trained
    labeled_by_votes: bool  # whether --label-votes asks the teacher several times per text
    one_label_per_text: bool  # a text's answer is one of the labels (class-conditioned generation, label balance)

    # reading -----------------------------------------------------------------------------
    def iter_rows(self, path, labels, *, cut_into=None) -> Iterator[tuple[int, dict]]:
        """(line number, row) of a labeled file, each row checked; over-long texts cut into `cut_into`."""
        raise NotImplementedError

    def read_rows(self, path, labels, *, unique: bool = True) -> list[dict]:
        """Labeled rows read strictly: every row checked, none dropped; with `unique` a repeated text is refused."""
        raise NotImplementedError

    def check_seeds(self, rows: list[dict], path) -> None:
        """Refuse seeds a run cannot start from."""
        raise NotImplementedError

    def check_training_rows(self, rows: list[dict], path) -> None:
        """Refuse training data a student cannot learn from."""
        raise NotImplementedError

    # answers and scores --------------------------------------------------------------------
    def same(self, a, b) -> bool:
        """Whether two answers agree."""
        raise NotImplementedError

    def report(self, gold: list, pred: list, labels: Sequence[str]) -> dict:
        """The evaluation report of predictions against gold answers."""
        raise NotImplementedError

    def score(self, gold: list, pred: list, labels: Sequence[str]) -> dict:
        """{"score": the selection metric, ...}: what `distill --student auto` ranks candidates by."""
        raise NotImplementedError

    def eval_fields(self, report: dict | None) -> dict:
        """The eval columns of a round record (every kind's columns; this kind's filled)."""
        fields = {"eval_n": 0, "eval_accuracy": None, "eval_macro_f1": None, "eval_entity_f1": None}
        if report is not None:
            fields.update(self._eval_values(report), eval_n=report["n"])
        return fields

    def _eval_values(self, report: dict) -> dict:
        raise NotImplementedError

    def scores(self, report: dict) -> dict:
        """The `bench_metrics` of a report, by name."""
        raise NotImplementedError

    def error_stats(self, rows: list[dict], labels: Sequence[str]) -> ErrorStats:
        """The student's errors on rows holding both the answer (`target_key`) and its prediction (`pred_key`)."""
        raise NotImplementedError

    def count_answers(self, rows: list[dict]) -> dict[str, int]:
        """How often each label (NER: entity type) is the answer in `rows`."""
        raise NotImplementedError

    def smallest_class(self, targets: list) -> tuple[str, int] | None:
        """The rarest label and its count, for stratified splits; None where answers are not one label."""
        return None

    # students ------------------------------------------------------------------------------
    def predict(self, student, texts: list[str]) -> list[tuple[Any, float | None]]:
        """(answer, confidence) per text from a trained student."""
        raise NotImplementedError

    def confidence(self, student, texts: list[str]):
        """The student's confidence per text (an array), for uncertainty sampling."""
        raise NotImplementedError

    def ranks_by_confidence(self, student_class) -> bool:
        """Whether students of `student_class` give the confidence `confidence` ranks by."""
        raise NotImplementedError

    def can_train(self, rows: list[dict]) -> tuple[bool, Any]:
        """(whether a student can learn from `rows`, the answer to give each text when it cannot)."""
        raise NotImplementedError

    def shipped_answers(self, outputs: list[dict]) -> list:
        """The answers in a shipped student's `predict` outputs (evokd.runtime)."""
        raise NotImplementedError

    # the loop ------------------------------------------------------------------------------
    def generation_mode(self, strategy) -> str:
        """The generation mode a strategy runs with on this kind (or a RunError when it cannot run)."""
        return strategy.generation

    def demonstrations(self, seeds: list[dict], labels: Sequence[str], per_label: int) -> list[dict]:
        """The labeled seeds the teacher's labeling step shows."""
        raise NotImplementedError

    def decode_stored_label(self, value: str):
        """A pool row's stored gold answer (the pool table's label column) as an answer."""
        return value

    def encode_stored_label(self, row: dict) -> str:
        """The label column of a pool row read from a labeled pool file (the inverse of decode_stored_label)."""
        return row[self.target_key]

    def check_answer(self, text: str, answer, labels: Sequence[str]) -> str | None:
        """A reject reason for an accepted answer the student cannot learn from, or None."""
        return None

    def sample_fields(self, answer, prediction, teacher_answer=None) -> dict:
        """The store's answer columns of a sample (evokd.store.SampleRow): its `answer` (None for a
        rejected sample), the student's `prediction`, and what the teacher answered (kept for a
        rejected classification sample too; a seed has none)."""
        raise NotImplementedError

    def dataset_row(self, row: dict) -> dict:
        """A stored sample as a row of the run's dataset.jsonl."""
        raise NotImplementedError


class Classification(TaskKind):
    name = "classification"
    target_key = "label"
    pred_key = "student_pred"
    no_answer = None
    headline = ("eval_accuracy", "accuracy")
    report_headline = "accuracy"
    eval_columns = ("eval_accuracy", "eval_macro_f1")
    selection_metric = "macro_f1"
    bench_metrics = ("macro_f1", "accuracy")
    answer_name = "label"
    answers_name = "by label"
    row_format = '{"text", "label"}'
    # benchmarks/results/local-teacher-30min-mpnet.md: the default loop at 30 minutes of the embedded teacher ends
    # 10.7 (sst2) and 3.6 (trec) macro-F1 points above the same loop with minilm, paired over 3 draws
    default_student = "mpnet"
    legacy_student = "tfidf"
    labeled_by_votes = True
    one_label_per_text = True

    def iter_rows(self, path, labels, *, cut_into=None):
        from evokd.io import iter_labeled

        return iter_labeled(path, labels, cut_into=cut_into)

    def read_rows(self, path, labels, *, unique: bool = True) -> list[dict]:
        from evokd.io import read_labeled

        return read_labeled(path, labels, unique=unique)

    def check_seeds(self, rows, path) -> None:
        found = {row["label"] for row in rows}
        if len(found) < 2:
            raise InputError(path, f"only label(s) {sorted(found)} present; expected seeds for at least two labels", field="label")

    def check_training_rows(self, rows, path) -> None:
        if len({r["label"] for r in rows}) < 2:
            raise InputError(path, "fewer than two distinct labels; expected examples of at least two labels", field="label")

    def same(self, a, b) -> bool:
        return a == b

    def report(self, gold, pred, labels) -> dict:
        return classification_report(gold, list(pred), list(labels))

    def score(self, gold, pred, labels) -> dict:
        report = self.report(gold, pred, labels)
        return {"score": report["macro_f1"], "accuracy": report["accuracy"]}

    def scores(self, report: dict) -> dict:
        return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}

    def _eval_values(self, report: dict) -> dict:
        return {"eval_accuracy": report["accuracy"], "eval_macro_f1": report["macro_f1"]}

    def error_stats(self, rows, labels) -> ErrorStats:
        gold = [r[self.target_key] for r in rows]
        pred = [r[self.pred_key] for r in rows]
        total = Counter(gold)
        wrong = Counter(g for g, p in zip(gold, pred) if g != p)
        return ErrorStats([LabelErrors(lab, wrong[lab], total[lab]) for lab in labels], confusion_pairs(gold, pred), "wrong")

    def count_answers(self, rows) -> dict[str, int]:
        return dict(Counter(r["label"] for r in rows))

    def smallest_class(self, targets):
        return min(Counter(targets).items(), key=lambda kv: kv[1]) if targets else None

    def predict(self, student, texts):
        import numpy as np

        if not texts:
            return []
        return [(student.labels_[int(np.argmax(row))], float(np.max(row))) for row in student.predict_proba(texts)]

    def confidence(self, student, texts):
        import numpy as np

        return np.max(student.predict_proba(texts), axis=1) if texts else np.empty(0)

    def ranks_by_confidence(self, student_class) -> bool:
        return True  # every classification student gives class probabilities

    def can_train(self, rows):
        labels = {r["label"] for r in rows}
        return len(labels) >= 2, (next(iter(labels)) if labels else None)

    def shipped_answers(self, outputs):
        return [p["label"] for p in outputs]

    def demonstrations(self, seeds, labels, per_label):
        by_label: dict[str, list[dict]] = {}
        for row in seeds:
            by_label.setdefault(row["label"], []).append(row)
        return [r for label in labels for r in by_label.get(label, [])[:per_label]]

    def sample_fields(self, answer, prediction, teacher_answer=None) -> dict:
        return {"label": answer, "teacher_label": teacher_answer, "student_pred": prediction,
                "entities": None, "student_entities": None}

    def dataset_row(self, r: dict) -> dict:
        return {"id": r["id"], "text": r["text"], "label": r["label"], "source": r["source"], "round": r["round"],
                "intent": r["intent"], "teacher_label": r["teacher_label"], "student_pred": r["student_pred"],
                "student_score": r["student_score"], "teacher_confidence": r.get("teacher_confidence")}


def _spans(answer) -> list[dict]:
    """Entity spans as {start, end, label} only (a shipped student's spans carry more fields)."""
    return [{k: e[k] for k in ("start", "end", "label")} for e in answer or []]


class Ner(TaskKind):
    name = "ner"
    target_key = "entities"
    pred_key = "student_entities"
    no_answer: list = []
    headline = ("eval_entity_f1", "entity F1")
    report_headline = "f1"
    eval_columns = ("eval_entity_f1",)
    selection_metric = "entity_f1"
    bench_metrics = ("entity_f1",)
    answer_name = "entity type"
    answers_name = "entities by type"
    row_format = '{"tokens", "tags"} or {"text", "entities"}'
    default_student = "tagger"
    legacy_student = "tagger"
    labeled_by_votes = False  # one JSON list of mentions per sentence
    one_label_per_text = False

    def iter_rows(self, path, labels, *, cut_into=None):
        from evokd.ner import iter_ner_rows

        return iter_ner_rows(path, labels, cut_into=cut_into)

    def read_rows(self, path, labels, *, unique: bool = True) -> list[dict]:
        from evokd.ner import read_ner_rows

        rows = read_ner_rows(path, labels)
        if unique:
            seen: dict[str, int] = {}
            for i, row in enumerate(rows, start=1):
                if row["text"] in seen:
                    raise InputError(path, f"duplicates row {seen[row['text']]}; expected unique texts", line=i, field="text")
                seen[row["text"]] = i
        return rows

    def check_seeds(self, rows, path) -> None:
        if not any(row["entities"] for row in rows):
            raise InputError(path, "no entities in any seed; expected at least one annotated entity", field="entities")

    def check_training_rows(self, rows, path) -> None:
        if not any(r["entities"] for r in rows):
            raise InputError(path, "no entities in any row; expected annotated examples", field="entities")

    def same(self, a, b) -> bool:
        key = lambda spans: sorted((s["start"], s["end"], s["label"]) for s in spans or [])  # noqa: E731
        return a is not None and b is not None and key(a) == key(b)

    def report(self, gold, pred, labels) -> dict:
        return entity_report(gold, [_spans(p) for p in pred], list(labels))

    def score(self, gold, pred, labels) -> dict:
        return {"score": self.report(gold, pred, labels)["f1"]}

    def scores(self, report: dict) -> dict:
        return {"entity_f1": report["f1"]}

    def _eval_values(self, report: dict) -> dict:
        return {"eval_entity_f1": report["f1"]}

    def error_stats(self, rows, labels) -> ErrorStats:
        report = entity_report([r[self.target_key] for r in rows], [r[self.pred_key] for r in rows], list(labels))
        out = []
        for label in labels:
            v = report["per_label"].get(label)
            if v and v["support"]:
                out.append(LabelErrors(label, round(v["support"] * (1 - v["recall"])), v["support"], v["precision"]))
            else:
                out.append(LabelErrors(label, 0, 0))
        return ErrorStats(out, [], "entities missed")

    def count_answers(self, rows) -> dict[str, int]:
        return dict(Counter(e["label"] for r in rows for e in r["entities"]))

    def predict(self, student, texts):
        return [(spans, None) for spans in student.predict(texts)] if texts else []

    def confidence(self, student, texts):
        return student.confidence(texts)  # the least certain token's top-tag probability

    def ranks_by_confidence(self, student_class) -> bool:
        return student_class.gives_confidence

    def can_train(self, rows):
        return any(r["entities"] for r in rows), []

    def shipped_answers(self, outputs):
        return [_spans(p["entities"]) for p in outputs]

    def generation_mode(self, strategy) -> str:
        if strategy.generation in ("static", "paraphrase"):
            raise RunError(f"strategy '{strategy.name}' writes class-conditioned texts; it is for classification tasks "
                           "(for NER use evokd, evokd-paper or a pool strategy)")
        # NER has no single class per text: the paper's hard/easy sentences, annotated
        return "free" if strategy.generation == "class" else strategy.generation

    def demonstrations(self, seeds, labels, per_label):
        return seeds[: per_label * 4]  # one sentence per entity type already covers the types

    def decode_stored_label(self, value: str):
        return json.loads(value)  # the gold spans travel in the pool's label column as JSON

    def encode_stored_label(self, row: dict) -> str:
        return json.dumps(row["entities"])

    def check_answer(self, text, answer, labels) -> str | None:
        from evokd.ner import validate_spans

        return validate_spans(text, answer, labels)

    def sample_fields(self, answer, prediction, teacher_answer=None) -> dict:
        return {"label": None, "teacher_label": None, "student_pred": None,
                "entities": answer, "student_entities": prediction}

    def dataset_row(self, r: dict) -> dict:
        return {"id": r["id"], "text": r["text"], "entities": r["entities"], "source": r["source"],
                "round": r["round"], "intent": r["intent"], "student_entities": r["student_entities"]}


KINDS: dict[str, TaskKind] = {k.name: k for k in (Classification(), Ner())}


def kind_rules(kind: str) -> TaskKind:
    """The rules of the task kind named `kind` ("classification" or "ner")."""
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown task kind {kind!r}; expected one of: {', '.join(KINDS)}") from None
