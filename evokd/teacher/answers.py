"""What a teacher's answer is for each task kind: a label name (classification) or entity mentions
(NER). The Teacher asks `ANSWERS[task.kind]` for the signatures, the wording of answers in prompts,
and how to label one text, instead of branching on the kind."""

from __future__ import annotations

import dspy

from evokd.filters import REASON_NO_LABEL
from evokd.teacher.signatures import (generate_labeled_signature, label_signature, ner_generate_labeled_signature,
                                     ner_label_signature)


def spans_text(text: str, spans: list[dict] | None) -> str:
    if not spans:
        return "(no entities)"
    return "; ".join(f"{text[s['start']:s['end']]} ({s['label']})" for s in spans)


class LabelAnswers:
    """Classification: the answer is one label name."""

    fixed_label_format: str | None = None  # the labeling step may be a plain question or JSON
    label_max_tokens = 48  # a label name

    def label_signature(self, labels, max_chars):
        return label_signature(labels)

    def generate_labeled_signature(self, labels, max_chars):
        return generate_labeled_signature(labels, max_chars)

    def demonstration(self, row: dict) -> str:
        return f"text: {row['text']}\nlabel: {row['label']}"

    def answer_text(self, text: str, answer) -> str:
        return str(answer)

    def generated_answer(self, teacher, text: str, item):
        return item.label

    def label_one(self, teacher, round_: int, text: str, votes: int):
        """(label, None, confidence) or (None, reject reason, None), after `votes` agreeing votes."""
        return teacher.label_scored(round_, text, votes)

    def read(self, result) -> tuple:
        """(answer, notes, reject reason, confidence) of a `label_one` result."""
        return result[0], None, result[1], result[2]

    def example(self, row: dict) -> dspy.Example:
        """A labeled row as an `evokd optimize` example of the labeling step."""
        return dspy.Example(text=row["text"], label=row["label"]).with_inputs("text")

    def judge(self, example, pred, labels) -> tuple[float, str]:
        """(score, feedback) of a labeling answer against the example's gold label."""
        got = getattr(pred, "label", None)
        if got == example.label:
            return 1.0, f"Correct: the label is {example.label}."
        return 0.0, f"Wrong: answered {got}, the correct label is {example.label}."


class EntityAnswers:
    """NER: the answer is a list of (mention, type) pairs, placed on the text as character spans by code."""

    fixed_label_format: str | None = "json"  # a list of mentions needs JSON
    label_max_tokens = 300  # a JSON list of mentions

    def label_signature(self, labels, max_chars):
        return ner_label_signature(labels)

    def generate_labeled_signature(self, labels, max_chars):
        return ner_generate_labeled_signature(labels, max_chars)

    def demonstration(self, row: dict) -> str:
        return f"text: {row['text']}\nentities: {spans_text(row['text'], row['entities'])}"

    def answer_text(self, text: str, answer) -> str:
        return spans_text(text, answer)

    def generated_answer(self, teacher, text: str, item):
        return teacher.place_mentions(text, item.entities)

    def label_one(self, teacher, round_: int, text: str, votes: int):
        """(spans, rejected mentions) or None; one call whatever `votes` is."""
        return teacher.label_entities(round_, text)

    def read(self, result) -> tuple:
        """(spans, notes, reject reason, confidence): no confidence, as a JSON answer is decoded, not scored."""
        return (None, None, REASON_NO_LABEL, None) if result is None else (result[0], result[1], None, None)

    def example(self, row: dict) -> dspy.Example:
        mentions = [{"text": row["text"][s["start"]:s["end"]], "type": s["label"]} for s in row.get("entities") or []]
        return dspy.Example(text=row["text"], entities=mentions, gold=row["entities"]).with_inputs("text")

    def judge(self, example, pred, labels) -> tuple[float, str]:
        """(entity F1, feedback) of the answer's mentions, placed on the text, against the gold spans."""
        from evokd.metrics import entity_f1
        from evokd.ner import locate_mentions

        pairs = [(getattr(m, "text", None) or (m.get("text") if isinstance(m, dict) else ""),
                  getattr(m, "type", None) or (m.get("type") if isinstance(m, dict) else ""))
                 for m in (getattr(pred, "entities", None) or [])]
        spans, rejected = locate_mentions(example.text, pairs, labels)
        f1 = entity_f1(example.gold, spans)
        want = "; ".join(f"{m['text']} ({m['type']})" for m in example.entities) or "(no entities)"
        return f1, f"Entity F1 {f1:.2f}. The correct entities are: {want}." + (
            f" {len(rejected)} of the answer's mentions could not be placed in the text." if rejected else "")


ANSWERS = {"classification": LabelAnswers(), "ner": EntityAnswers()}
