"""The plain labeling question (evokd.teacher.adapter.PlainLabelAdapter): how it is written, how the
answer is read, and that the embedded llama.cpp engine scores the bare label names and returns
their probabilities."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import dspy
import pytest
from dspy.utils.exceptions import AdapterParseError

from evokd.task import load_task
from evokd.teacher import local
from evokd.teacher.adapter import PlainLabelAdapter
from evokd.teacher.teacher import Teacher
from evokd.teacher.signatures import label_signature

ROOT = Path(__file__).resolve().parents[1]
SIG = label_signature(["World", "Sports", "Business", "Sci/Tech"])
INPUTS = {"task": "Classify news.", "labels": "- World: ...\n- Sports: ...", "demonstrations": "text: a\nlabel: World",
          "text": "Stocks fell sharply."}


def test_format_is_a_short_conversation_with_bare_label_turns():
    demos = [{"text": "Team wins the cup.", "label": "Sports"}, {"text": "no label here"}]
    msgs = PlainLabelAdapter().format(SIG, demos, INPUTS)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]  # the demo without a label is left out
    system = msgs[0]["content"]
    assert SIG.instructions.strip() in system and "Task: Classify news." in system
    assert "Labels:\n- World" in system and "Labeled examples:\ntext: a" in system
    assert "[[ ##" not in "".join(m["content"] for m in msgs)  # none of DSPy's field markers
    # the fixed question first and the text last, so every labeling prompt shares all but its text
    assert msgs[1]["content"] == "Which label fits the text? Answer with one of: World, Sports, Business, Sci/Tech.\n\nText: Team wins the cup."
    assert msgs[2]["content"] == "Sports" and msgs[3]["content"].endswith("\n\nText: Stocks fell sharply.")


@pytest.mark.parametrize("answer,label", [("Business", "Business"), ("business.", "Business"), ('"Sci/Tech"', "Sci/Tech"),
                                          ("Label: World", "World"), ("The text is about Sports.", "Sports"),
                                          ("`World`", "World")])
def test_parse_reads_one_label_name(answer, label):
    assert PlainLabelAdapter().parse(SIG, answer) == {"label": label}


@pytest.mark.parametrize("answer", ["", "Either World or Sports", "Politics", "Sci"])
def test_parse_refuses_anything_but_exactly_one_label(answer):
    with pytest.raises(AdapterParseError):
        PlainLabelAdapter().parse(SIG, answer)


class FakeLlama:
    """TEST DOUBLE for llama_cpp.Llama and the engine's writer: records what the JSON labeling format asks to write."""

    def __init__(self):
        self.calls = []

    def write(self, llama, tokens, **kwargs):
        from evokd.teacher.llama_decoding import Written

        self.calls.append(kwargs)
        return Written(text='{"label": "Sports"}', completion_tokens=5, finish_reason="stop", reused=0, evaluated=len(tokens))


class FakeSlots:
    """TEST DOUBLE for the engine's per-family contexts: one fake Llama for every family."""

    def __init__(self, llama):
        self.llama, self.lock, self.families = llama, threading.Lock(), []

    def get(self, family):
        self.families.append(family)
        return self.llama


def test_local_engine_scores_the_bare_names_and_returns_their_probabilities(monkeypatch):
    fake = FakeLlama()
    slots = FakeSlots(fake)
    scored = []

    def fake_scores(llama, tokens, choices):  # TEST DOUBLE for llama_scoring.choice_logprobs
        scored.append((tokens, tuple(choices)))
        return {"World": -3.0, "Sports": -0.1, "Business": -2.9, "Sci/Tech": -4.0}, 1, 1

    monkeypatch.setattr(local, "_load_llama", lambda *args: slots)
    monkeypatch.setattr(local, "prompt_tokens", lambda llama, messages: [len(m["content"]) for m in messages])
    monkeypatch.setattr(local, "choice_logprobs", fake_scores)
    monkeypatch.setattr(local, "write", fake.write)
    lm = dspy.LM(local.MODEL_NAME, engine=local.LlamaEngine(model_path="unused.gguf"), temperature=0.8, cache=False)
    # the ag_news task's labels only: its data lives in the benchmark data folder, not needed here
    task = load_task(ROOT / "datasets" / "ag_news" / "task.yaml", check_files=False)
    teacher = Teacher(task, lm)
    assert teacher.label_format == "plain"
    label, probability = teacher.label_vote_scored(0, "Team wins the cup.")
    assert label == "Sports" and probability == pytest.approx(math.exp(-0.1))
    assert fake.calls == [] and scored[0][1] == ("World", "Sports", "Business", "Sci/Tech")
    assert slots.families == ["label"]  # labeling runs on its own context
    (call,) = teacher.drain_calls()
    assert call.ok and call.prompt_tokens_cached == len(scored[0][0]) - 1  # what the context already held
    # every label's probability, from the same scored prompt (not scored again)
    distribution = teacher.label_distribution(0, "Team wins the cup.")
    raw = {"World": -3.0, "Sports": -0.1, "Business": -2.9, "Sci/Tech": -4.0}
    total = sum(math.exp(v) for v in raw.values())
    assert distribution == pytest.approx({k: math.exp(v) / total for k, v in raw.items()}) and len(scored) == 1
    # a second (sampled) vote on the same prompt is not scored again
    assert teacher.label_scored(0, "Team wins the cup.", votes=2)[0] in ("Sports", None) and len(scored) == 1
    # batch calibration: the same scores divided by a prior that says the teacher gives Sports to nearly
    # everything; Business (the second most probable, and the least expected) wins, from the same call
    teacher.label_prior = {"World": 0.01, "Sports": 0.97, "Business": 0.01, "Sci/Tech": 0.01}
    scaled = {k: distribution[k] / teacher.label_prior[k] for k in raw}
    label, reason, confidence = teacher.label_scored(0, "Team wins the cup.")
    assert (label, reason) == ("Business", None) and len(scored) == 1
    assert confidence == pytest.approx(scaled["Business"] / sum(scaled.values()))

    json_teacher = Teacher(task, lm, label_format="json")
    assert json_teacher.label_vote(0, "Team wins the cup.") == "Sports"
    assert fake.calls[0]["grammar"] is not None  # a JSON answer is written under a grammar, not scored
    assert slots.families[-1] != "label"


def test_answer_distribution_needs_every_label_among_the_listed_tokens():
    from evokd.teacher.adapter import answer_distribution

    def entry(tops):
        return {"content": [{"token": tops[0][0], "logprob": tops[0][1],
                             "top_logprobs": [{"token": t, "logprob": lp} for t, lp in tops]}]}

    labels = ["positive", "negative"]
    both = answer_distribution(entry([("positive", math.log(0.6)), ("negative", math.log(0.2))]), labels)
    assert both == pytest.approx({"positive": 0.75, "negative": 0.25})  # renormalised over the labels
    # a hosted teacher's first token: "pos" is not a label, so nothing but the answer's own probability is known
    assert answer_distribution(entry([("pos", -0.1), ("negative", -2.5)]), labels) is None
    assert answer_distribution(None, labels) is None and answer_distribution({"content": [{}]}, labels) is None


def test_ner_labeling_stays_json_and_bad_formats_are_refused():
    lm = dspy.LM("scripted/test-double", cache=False)
    assert Teacher(load_task(ROOT / "datasets" / "wnut17" / "task.yaml"), lm).label_format == "json"
    with pytest.raises(ValueError, match="label_format 'xml'"):
        Teacher(load_task(ROOT / "datasets" / "trec" / "task.yaml"), lm, label_format="xml")


def test_hosted_teachers_get_no_response_format():
    """A hosted model is asked in words (OpenAI-style schemas cannot have a bare string root)."""
    seen = {}

    class Recorder(dspy.BaseLM):
        def __init__(self):
            super().__init__(model="openai/gpt-test", cache=False)

        def __call__(self, prompt=None, messages=None, **kwargs):
            seen.update(kwargs, messages=messages)
            return ["Business"]

    sig = SIG
    out = PlainLabelAdapter()(Recorder(), {"temperature": 0.0}, sig, [], INPUTS)
    assert out == [{"label": "Business"}] and "response_format" not in seen
