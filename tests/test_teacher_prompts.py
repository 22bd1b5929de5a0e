"""What the teacher's generation prompts cost a local model to read, and what they invite it to copy.

No model: DSPy's own JSONAdapter formats the real signatures, pydantic parses real answers."""

from __future__ import annotations

import dspy
import pydantic

from evokd.teacher.signatures import class_generate_signature
from evokd.teacher.wording import without_quoted_examples


def test_generated_texts_are_named_text_in_every_call_and_capped_only_in_the_schema():
    messages = dspy.JSONAdapter().format(class_generate_signature(120), demos=[], inputs={
        "task": "t", "labels": "- a", "weaknesses": "- w", "kind": "2 hard, then 1 easy", "label": "a", "n": 3})
    closing = messages[-1]["content"].splitlines()[-1]
    # the closing instruction, re-read by every call: the short type name, not the annotated form (~45 tokens)
    assert closing.endswith("`texts` (must be formatted as a valid Python list[Text]).")
    assert "Annotated" not in messages[0]["content"] + messages[-1]["content"]
    # the cap stays in the JSON schema (a local teacher's grammar) ...
    field = class_generate_signature(120).output_fields["texts"]
    adapter = pydantic.TypeAdapter(field.annotation)
    assert adapter.json_schema() == {"type": "array", "items": {"type": "string", "maxLength": 120}}
    # ... and is not a validator: a hosted model's one long text does not lose the batch
    assert adapter.validate_python(["x" * 200, "short"]) == ["x" * 200, "short"]


def test_quoted_example_inputs_are_cut_from_the_analysis_short_quotes_kept():
    analysis = ("It fails on reason questions, such as 'What is the purpose of a bicycle?' or "
                "\"How do you use a calculator?\", and on “I hated every minute of it”. It misses 'not bad' "
                "and the student's confusions of DESC with ENTY.")
    cut = without_quoted_examples(analysis)
    assert cut == ("It fails on reason questions, such as … or …, and on …. It misses 'not bad' "
                   "and the student's confusions of DESC with ENTY.")
    assert without_quoted_examples("- confuses negation\n- misses sarcasm") == "- confuses negation\n- misses sarcasm"
