"""A plain-question DSPy adapter for the classification labeling step.

DSPy's structured adapters put every field in `[[ ## field ## ]]` blocks and ask for a JSON (or
field-marker) answer. The embedded 1.5B teacher reads that much worse than a plain question: on 100
held-out SST-2 test sentences the labeling signature scored 61% zero-shot through `dspy.JSONAdapter`
(answering "negative" for 86), while this adapter scores 87.7% zero-shot on 300 (benchmarks/optimize.md).
`PlainLabelAdapter` renders the same signature as a short conversation instead:

- system: the signature's instructions, the task, the label meanings and the demonstrations field;
- each few-shot demo of the predictor (what `evokd optimize` bootstraps): a user turn with the text,
  an assistant turn with the bare label;
- the text to label as the last user turn, answered with one label name.

The question comes before the text, so everything but the text is the same for every text: a
local teacher keeps that prefix in its KV cache and reads only the text and the turn's end
(about 30 tokens for an SST-2 sentence instead of about 50).

The answer's probability is asked for too (`logprobs`): the embedded teacher scores every label
name and returns all their probabilities; an OpenAI-compatible teacher returns its tokens'
probabilities where it supports them (`evokd.teacher.gateway` stops asking one that refuses).

It is still a DSPy adapter over the same signature, so the optimisers tune its demos and
instructions as before. A local llama.cpp teacher is constrained to the label names (a grammar of
the bare choices, see `evokd.teacher.local`); a hosted teacher is asked in words, and the answer is
parsed leniently (case, quotes, a trailing period, one label name inside a sentence).
"""

from __future__ import annotations

import re
from typing import Any, get_args

import dspy
from dspy.utils.exceptions import AdapterParseError

from evokd.teacher.local import MODEL_NAME, choice_response_format

LOCAL_PREFIX = MODEL_NAME.split("/")[0] + "/"

# The question's fixed wording; the scripted TEST DOUBLE recognises the question by it.
QUESTION = "Which label fits the text? Answer with one of: {labels}.\n\nText: {text}"


def label_names(signature) -> list[str]:
    field = signature.output_fields["label"]
    return [str(a) for a in get_args(field.annotation)]


class PlainLabelAdapter(dspy.ChatAdapter):
    """Classification labeling as a plain question (see the module docstring)."""

    def __init__(self):
        super().__init__(use_json_adapter_fallback=False)

    @staticmethod
    def _question(text: str, labels: list[str]) -> str:
        return QUESTION.format(text=text, labels=", ".join(labels))

    @staticmethod
    def _constrained(lm, lm_kwargs: dict, signature) -> dict:
        """Ask for the answer's probability; a local llama.cpp teacher also gets the choice
        response_format, which makes it score the bare names instead of writing an answer."""
        kwargs = dict(lm_kwargs)
        if "logprobs" in getattr(lm, "supported_params", ()):
            kwargs.setdefault("logprobs", True)
            kwargs.setdefault("top_logprobs", min(20, len(label_names(signature))))
        if str(getattr(lm, "model", "")).startswith(LOCAL_PREFIX) and "response_format" not in kwargs:
            kwargs["response_format"] = choice_response_format(label_names(signature))
        return kwargs

    def format(self, signature, demos: list[dict[str, Any]], inputs: dict[str, Any]) -> list[dict[str, Any]]:
        labels = label_names(signature)
        parts = [signature.instructions.strip()]
        if inputs.get("task"):
            parts.append(f"Task: {inputs['task']}")
        if inputs.get("labels"):
            parts.append(f"Labels:\n{inputs['labels']}")
        if inputs.get("demonstrations"):
            parts.append(f"Labeled examples:\n{inputs['demonstrations']}")
        messages = [{"role": "system", "content": "\n\n".join(p for p in parts if p)}]
        for demo in demos:
            if demo.get("text") and demo.get("label") in labels:
                messages += [{"role": "user", "content": self._question(demo["text"], labels)},
                             {"role": "assistant", "content": demo["label"]}]
        messages.append({"role": "user", "content": self._question(inputs["text"], labels)})
        return messages

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        return super().__call__(lm, self._constrained(lm, lm_kwargs, signature), signature, demos, inputs)

    async def acall(self, lm, lm_kwargs, signature, demos, inputs):
        return await super().acall(lm, self._constrained(lm, lm_kwargs, signature), signature, demos, inputs)

    def parse(self, signature, completion: str) -> dict[str, Any]:
        labels = label_names(signature)
        answer = completion.strip().strip("`").strip()
        answer = re.sub(r"^(label|answer)\s*:\s*", "", answer, flags=re.I).strip().strip("\"'").rstrip(".").strip()
        by_lower = {lab.lower(): lab for lab in labels}
        if answer.lower() in by_lower:
            return {"label": by_lower[answer.lower()]}
        found = {lab for lab in labels if re.search(rf"(?<![\w-]){re.escape(lab)}(?![\w-])", completion, flags=re.I)}
        if len(found) == 1:
            return {"label": found.pop()}
        raise AdapterParseError(adapter_name="PlainLabelAdapter", signature=signature, lm_response=completion,
                                message=f"expected one of {', '.join(labels)}")


def answer_probability(logprobs) -> float | None:
    """The teacher's probability of its answer, from the logprobs DSPy attached to a prediction.

    The embedded teacher gives one entry, the label name with its probability among the names; an
    OpenAI-compatible teacher gives one per answer token, whose product is the answer's probability.
    None when the teacher returned no probabilities.
    """
    import math

    content = (logprobs or {}).get("content") if isinstance(logprobs, dict) else None
    if not content:
        return None
    try:
        return float(math.exp(sum(float(entry["logprob"]) for entry in content)))
    except (KeyError, TypeError, ValueError):
        return None


def answer_distribution(logprobs, labels) -> dict[str, float] | None:
    """Every label's probability, from the logprobs DSPy attached to a labeling prediction, renormalised
    over `labels`. The embedded teacher scores every label name, so its one entry lists them all; a
    hosted teacher's first answer token lists only its top tokens, which name whole labels only by
    chance. None unless every label is there (then nothing but the answer's own probability is known)."""
    import math

    content = (logprobs or {}).get("content") if isinstance(logprobs, dict) else None
    if not content:
        return None
    try:
        listed = {str(top["token"]): math.exp(float(top["logprob"])) for top in content[0].get("top_logprobs") or ()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if not all(label in listed for label in labels):
        return None
    total = sum(listed[label] for label in labels)
    return {label: listed[label] / total for label in labels} if total > 0 else None
