"""The plain labeling question (evokd.teacher.adapter.PlainLabelAdapter): how it is written, how the
answer is read, and that the embedded llama.cpp engine constrains it to the bare label names."""

from __future__ import annotations

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
    assert msgs[1]["content"] == "Text: Team wins the cup.\n\nWhich label fits the text? Answer with one of: World, Sports, Business, Sci/Tech."
    assert msgs[2]["content"] == "Sports" and msgs[3]["content"].startswith("Text: Stocks fell sharply.")


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
    """TEST DOUBLE for llama_cpp.Llama: records the request, answers a bare label."""

    def __init__(self):
        self.calls = []

    def create_chat_completion(self, **kwargs):
        self.calls.append(kwargs)
        return {"choices": [{"message": {"content": "Sports"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 1}}


def test_local_engine_constrains_the_answer_to_the_bare_names(monkeypatch):
    pytest.importorskip("llama_cpp")  # the grammar is llama.cpp's own object
    fake = FakeLlama()
    monkeypatch.setattr(local, "_load_llama", lambda *args: (fake, threading.Lock()))
    lm = dspy.LM(local.MODEL_NAME, engine=local.LlamaEngine(model_path="unused.gguf"), temperature=0.0, cache=False)
    # the ag_news task's labels only: its data lives in the benchmark data folder, not needed here
    task = load_task(ROOT / "datasets" / "ag_news" / "task.yaml", check_files=False)
    teacher = Teacher(task, lm)
    assert teacher.label_format == "plain"
    assert teacher.label_vote(0, "Team wins the cup.") == "Sports"
    (call,) = fake.calls
    assert call["response_format"] is None and call["temperature"] == 0.0
    assert call["grammar"] is local._choice_grammar(("World", "Sports", "Business", "Sci/Tech"))
    assert call["messages"][-1]["content"].startswith("Text: Team wins the cup.")

    fake.calls.clear()
    json_teacher = Teacher(task, lm, label_format="json")
    fake.create_chat_completion = lambda **kw: (fake.calls.append(kw), {
        "choices": [{"message": {"content": '{"label": "Sports"}'}, "finish_reason": "stop"}], "usage": {}})[1]
    assert json_teacher.label_vote(0, "Team wins the cup.") == "Sports"
    assert fake.calls[0]["response_format"]["type"] == "json_object" and "grammar" not in fake.calls[0]


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
