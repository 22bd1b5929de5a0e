"""The teacher's steps as DSPy signatures. All prompt wording lives here (and in prompts/)."""

from __future__ import annotations

import functools
from typing import Literal

import dspy
import pydantic
from pydantic_core import core_schema


class AnalyzeWeaknesses(dspy.Signature):
    """A small text classifier (the student) is being trained for the task below. Study the inputs
    it got wrong and right, and the error statistics computed by code, then describe concretely which
    kinds of inputs it fails on: topics, phrasing, negation, length, and which labels it confuses.
    Write 3 to 5 short bullet points. Do not copy the examples; generalise from them."""

    task: str = dspy.InputField(desc="what the classifier does")
    labels: str = dspy.InputField(desc="the label names with their meaning")
    error_stats: str = dspy.InputField(desc="per-label error rates and the most frequent confusions, computed by code")
    wrong_examples: str = dspy.InputField(desc="inputs the student got wrong, with the correct and the predicted label")
    correct_examples: str = dspy.InputField(desc="inputs the student got right")
    score_history: str = dspy.InputField(desc="the student's held-out accuracy after each earlier round")
    weaknesses: str = dspy.OutputField(desc="3-5 bullet points describing the student's weaknesses")


_GENERATE_DOC = """Write new inputs for the task below, each one a single realistic, self-contained text in the
task's domain and style, all different from each other. Hard inputs must target the student's
weaknesses so that it will probably misclassify them; easy inputs must be clear, typical cases
it should get right. Cover all labels. Each text must be an actual input as the task would see it
(for example the sentence itself), never a description or summary of one. Write only the texts
themselves: no labels, no numbering, no notes about the student."""


class Text(str):
    """A generated text, capped at `max_chars` characters in the JSON schema only.

    The cap is JSON-schema maxLength, which llama.cpp enforces as a grammar: a weak local model
    cannot write an essay per item. It is not a validator: a hosted model that writes one text past
    it must not lose the whole batch to a parse error (the filters judge each text). A class and not
    `Annotated[str, ...]` because DSPy writes the type's name into every call's closing instruction:
    "list[Text]" is 4 tokens, the annotated form ~45, and a local teacher re-reads them per call.
    """

    max_chars = 300

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        return core_schema.no_info_after_validator_function(str, core_schema.str_schema())

    @classmethod
    def __get_pydantic_json_schema__(cls, schema, handler):
        return {"type": "string", "maxLength": cls.max_chars}


@functools.lru_cache(maxsize=None)
def _capped_text(max_chars: int) -> type[Text]:
    """`Text` capped at `max_chars` (one class per cap, all named Text)."""
    return type("Text", (Text,), {"max_chars": max_chars, "__doc__": Text.__doc__})


def _texts(max_chars: int):
    # DSPy drops a list-level maxItems; the Teacher bounds the number of items through max_tokens.
    return list[_capped_text(max_chars)]


def generate_signature(max_chars: int = 300) -> type[dspy.Signature]:
    """Input generation: hard and easy texts, no labels (the paper's step 3)."""
    return dspy.Signature(
        {
            "task": (str, dspy.InputField(desc="what the classifier does")),
            "labels": (str, dspy.InputField(desc="the label names with their meaning")),
            "weaknesses": (str, dspy.InputField(desc="the student's current weaknesses")),
            "previous_weaknesses": (str, dspy.InputField(desc="weaknesses found in earlier rounds, oldest first")),
            "n_hard": (int, dspy.InputField(desc="how many hard texts to write")),
            "n_easy": (int, dspy.InputField(desc="how many easy texts to write")),
            "hard_texts": (_texts(max_chars), dspy.OutputField(desc="the hard texts")),
            "easy_texts": (_texts(max_chars), dspy.OutputField(desc="the easy texts")),
        },
        _GENERATE_DOC,
    ).with_instructions(_GENERATE_DOC)


_LABEL_DOC = """Assign the text exactly one label from the task's label set. Read the label meanings
and the labeled examples, then answer with the label that fits the text best."""

_GENERATE_LABELED_DOC = """Write new inputs for the task below together with their correct labels, each
text a single realistic, self-contained text in the task's domain and style, all different from each
other. Hard inputs must target the student's weaknesses so that it will probably misclassify them;
easy inputs must be clear, typical cases. Cover all labels. Put no label or note inside the texts."""


def label_signature(labels: list[str]) -> type[dspy.Signature]:
    """The labeling step, with the task's labels as an enum so the output is always a valid label."""
    label_type = Literal[tuple(labels)]  # type: ignore[valid-type]
    return dspy.Signature(
        {
            "task": (str, dspy.InputField(desc="what the classifier does")),
            "labels": (str, dspy.InputField(desc="the label names with their meaning")),
            "demonstrations": (str, dspy.InputField(desc="labeled examples from the task")),
            "text": (str, dspy.InputField(desc="the text to label")),
            "label": (label_type, dspy.OutputField(desc="the one label that fits the text")),
        },
        _LABEL_DOC,
    ).with_instructions(_LABEL_DOC)


def generate_labeled_signature(labels: list[str], max_chars: int = 300) -> type[dspy.Signature]:
    """Generation that also labels (the paper's ablation without a separate labeling call)."""
    label_type = Literal[tuple(labels)]  # type: ignore[valid-type]
    text_type = _capped_text(max_chars)
    example = pydantic.create_model("LabeledText", text=(text_type, ...), label=(label_type, ...))
    examples = list[example]
    return dspy.Signature(
        {
            "task": (str, dspy.InputField(desc="what the classifier does")),
            "labels": (str, dspy.InputField(desc="the label names with their meaning")),
            "weaknesses": (str, dspy.InputField(desc="the student's current weaknesses")),
            "previous_weaknesses": (str, dspy.InputField(desc="weaknesses found in earlier rounds, oldest first")),
            "n_hard": (int, dspy.InputField(desc="how many hard examples to write")),
            "n_easy": (int, dspy.InputField(desc="how many easy examples to write")),
            "hard_examples": (examples, dspy.OutputField(desc="the hard examples with labels")),
            "easy_examples": (examples, dspy.OutputField(desc="the easy examples with labels")),
        },
        _GENERATE_LABELED_DOC,
    ).with_instructions(_GENERATE_LABELED_DOC)


_NER_LABEL_DOC = """Find every named entity in the text and give its type. Copy each entity exactly as it
is written in the text (same spelling and capitalisation); list an entity once even if it occurs
several times. Use only the entity types of the task; return an empty list if there is none."""

_NER_GENERATE_LABELED_DOC = """Write new sentences for the task below together with their named entities,
each sentence realistic, self-contained and different from the others (the sentence itself, never a
description of one). Hard sentences must target
the student's weaknesses; easy ones must be clear, typical cases. For every sentence list each
entity copied exactly as written in the sentence, with its type."""


def _mention_model(types: list[str]):
    type_type = Literal[tuple(types)]  # type: ignore[valid-type]
    return pydantic.create_model("Mention", text=(str, ...), type=(type_type, ...))


def ner_label_signature(types: list[str]) -> type[dspy.Signature]:
    """NER labeling: entity mentions with types, never character offsets (code places them)."""
    return dspy.Signature(
        {
            "task": (str, dspy.InputField(desc="what the entity tagger does")),
            "labels": (str, dspy.InputField(desc="the entity types with their meaning")),
            "demonstrations": (str, dspy.InputField(desc="annotated examples from the task")),
            "text": (str, dspy.InputField(desc="the text to annotate")),
            "entities": (list[_mention_model(types)], dspy.OutputField(desc="each entity as written in the text, with its type")),
        },
        _NER_LABEL_DOC,
    ).with_instructions(_NER_LABEL_DOC)


def ner_generate_labeled_signature(types: list[str], max_chars: int = 300) -> type[dspy.Signature]:
    """NER generation that also annotates (the ablation without a separate labeling call)."""
    text_type = _capped_text(max_chars)
    example = pydantic.create_model("AnnotatedText", text=(text_type, ...), entities=(list[_mention_model(types)], ...))
    return dspy.Signature(
        {
            "task": (str, dspy.InputField(desc="what the entity tagger does")),
            "labels": (str, dspy.InputField(desc="the entity types with their meaning")),
            "weaknesses": (str, dspy.InputField(desc="the student's current weaknesses")),
            "previous_weaknesses": (str, dspy.InputField(desc="weaknesses found in earlier rounds, oldest first")),
            "n_hard": (int, dspy.InputField(desc="how many hard sentences to write")),
            "n_easy": (int, dspy.InputField(desc="how many easy sentences to write")),
            "hard_examples": (list[example], dspy.OutputField(desc="the hard sentences with their entities")),
            "easy_examples": (list[example], dspy.OutputField(desc="the easy sentences with their entities")),
        },
        _NER_GENERATE_LABELED_DOC,
    ).with_instructions(_NER_GENERATE_LABELED_DOC)


_CLASS_GENERATE_DOC = """Write new inputs for the task below, all of the given label, each one a single realistic,
self-contained text in the task's domain and style, all different from each other. `kind` says what
to write: hard texts target the student's weaknesses so that
it will probably get them wrong, while still clearly belonging to the label; easy texts are clear,
typical cases of the label; varied texts are natural, diverse examples of the label. When `kind` asks
for hard and easy texts, write the hard ones first, and no easy text may repeat a hard one. Write only
the texts themselves: no labels, no numbering, no notes."""


_CLASS_GENERATE_PROPERTIES_DOC = _CLASS_GENERATE_DOC + """ Every text must also have the given
properties: its length, its subtopic and any other property listed."""


def class_generate_signature(max_chars: int = 300, *, with_properties: bool = False) -> type[dspy.Signature]:
    """Class-conditioned generation: n texts of one label. The inputs that change between the calls of a
    round (kind, label, properties, n) come last, so a local model reuses the shared prompt prefix. No
    example texts: a small model copies them verbatim, and the copies are exact duplicates of the seeds.
    `with_properties`: the request also names properties every text must have (evokd.loop.attributes)."""
    fields = {
        "task": (str, dspy.InputField(desc="what the classifier does")),
        "labels": (str, dspy.InputField(desc="the label names with their meaning")),
        "weaknesses": (str, dspy.InputField(desc="the student's current weaknesses")),
        "kind": (str, dspy.InputField(desc="hard, easy or varied, or how many of each (hard first)")),
        "label": (str, dspy.InputField(desc="the label every text must have, with its meaning")),
    }
    if with_properties:
        fields["properties"] = (str, dspy.InputField(desc="properties every text must have, e.g. its length and subtopic"))
    fields["n"] = (int, dspy.InputField(desc="how many texts to write"))
    fields["texts"] = (_texts(max_chars), dspy.OutputField(desc="the texts, all of the given label"))
    doc = _CLASS_GENERATE_PROPERTIES_DOC if with_properties else _CLASS_GENERATE_DOC
    return dspy.Signature(fields, doc).with_instructions(doc)


class ListSubtopics(dspy.Signature):
    """List distinct subtopics that texts of the given label are about in the task below: short noun
    phrases, all different from each other, together covering the range of texts the label has. Write
    only the subtopics: no numbering, no explanations."""

    task: str = dspy.InputField(desc="what the classifier does")
    labels: str = dspy.InputField(desc="the label names with their meaning")
    label: str = dspy.InputField(desc="the label whose subtopics to list, with its meaning")
    n: int = dspy.InputField(desc="how many subtopics to list")
    subtopics: list[str] = dspy.OutputField(desc="the subtopics, each a short noun phrase")


_PARAPHRASE_DOC = """Rewrite the given text for the task below in new ways that keep its meaning and its label:
change the wording, the sentence structure and the details, but stay in the task's domain and style.
Each rewrite must be different from the text and from the other rewrites. Write only the rewrites."""


def paraphrase_signature(max_chars: int = 300) -> type[dspy.Signature]:
    """AugGPT-style augmentation: paraphrases of one labeled seed."""
    return dspy.Signature(
        {
            "task": (str, dspy.InputField(desc="what the classifier does")),
            "label": (str, dspy.InputField(desc="the text's label, which every rewrite keeps")),
            "text": (str, dspy.InputField(desc="the text to rewrite")),
            "n": (int, dspy.InputField(desc="how many rewrites to write")),
            "rewrites": (_texts(max_chars), dspy.OutputField(desc="the rewrites")),
        },
        _PARAPHRASE_DOC,
    ).with_instructions(_PARAPHRASE_DOC)
