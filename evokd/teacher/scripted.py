"""TEST DOUBLE: a scripted teacher engine that answers DSPy requests without any model.

It is for unit and end-to-end tests of the loop's logic and for smoke benchmarks, never for
real data: "generated" texts are drawn from a labeled pool of real sentences, and "labels" are
that pool's gold labels (optionally corrupted at a fixed rate to exercise the filters).
It plugs in through DSPy's custom-engine interface, the same path the embedded model uses.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re

import dspy
from dspy.lm15 import Message, Response, TextPart, TokenLogprob, TopLogprob, Usage, response_to_events

from evokd.teacher.adapter import QUESTION

_TEXT_FIELD = re.compile(r"\[\[ ## text ## \]\]\n(.*?)\n\n(?:\[\[ ## |Respond with)", re.DOTALL)
# the plain labeling question (evokd.teacher.adapter.QUESTION): group 1 is the text
_PLAIN_QUESTION = re.compile(re.escape(QUESTION).replace(re.escape("{text}"), r"(.*?)(?=\n|\Z)")
                             .replace(re.escape("{labels}"), r"[^\n]*"), re.DOTALL)


def _last_text(prompt: str) -> str:
    """The text to label: the last `text` field (DSPy's system message first shows a "{text}" placeholder),
    or the text of the last plain labeling question (evokd.teacher.adapter.PlainLabelAdapter)."""
    found = _TEXT_FIELD.findall(prompt) or _PLAIN_QUESTION.findall(prompt)
    return found[-1].strip() if found else ""


def is_plain_question(last_message: str) -> bool:
    """Whether the last message is the plain labeling question (answered with a bare label name)."""
    return bool(_PLAIN_QUESTION.fullmatch(last_message.strip()))


class ScriptedEngine:
    """Deterministic stand-in for an LLM; see the module docstring."""

    supports_response_schema = True
    supported_params = {"response_format", "temperature", "max_tokens", "seed", "logprobs", "top_logprobs"}
    GOLD_PROBABILITY, NOISE_PROBABILITY = 0.95, 0.55  # the plain question's answer probability: gold label, noisy one

    def __init__(self, pool: list[dict], labels: list[str], *, label_noise: float = 0.0, seed: int = 0,
                 fail_every: int = 0, extra_mention: str | None = None, blind_to: str | None = None,
                 favoured: str | None = None):
        self.pool = list(pool)
        # a label the plain question's scores favour whatever the text (as the embedded teacher favours TREC's
        # DESC): its answers then list every label's probability, as the embedded teacher's do (`distribution`)
        self.favoured = favoured
        # a label the labeling call never gives (another label instead), as the embedded teacher all but
        # never says ag_news's Sci/Tech; generation still writes texts for it
        self.blind_to = blind_to
        self.gold = {row["text"]: row.get("label", row.get("entities")) for row in pool}
        self.labels = labels
        self.label_noise = label_noise
        self.seed = seed
        self.fail_every = fail_every
        self.extra_mention = extra_mention  # NER: a mention that is not in the text, to exercise placement checks
        self.n_calls = 0
        self._seen: dict[str, int] = {}

    def rng_for(self, prompt: str, *, vary_on_repeat: bool = True) -> random.Random:
        # Deterministic per (prompt, how often this prompt was asked), so a resumed run sees
        # the same answers as an uninterrupted one. Without vary_on_repeat, purely per prompt.
        key = hashlib.sha256(f"{self.seed}|{prompt}".encode()).hexdigest()
        self._seen[key] = self._seen.get(key, 0) + 1
        return random.Random(f"{key}|{self._seen[key] if vary_on_repeat else 0}")

    def _rng_for(self, request) -> random.Random:
        return self.rng_for("\n".join(m.text or "" for m in request.messages))

    def _answer(self, request, rng: random.Random) -> dict | str:
        prompt = "\n".join(m.text or "" for m in request.messages)
        if request.messages and is_plain_question(request.messages[-1].text or ""):  # answered with a bare label name
            if self.favoured:  # the scored argmax, as the embedded teacher answers at temperature 0
                scores = self.distribution(prompt)
                return max(scores, key=scores.get)
            answer = self.answer({"label"}, prompt, rng)
            return answer["label"] if isinstance(answer, dict) else answer
        schema = (request.config.response_format or {}).get("schema", {})
        return self.answer(set(schema.get("properties", {})), prompt, rng)

    def answer(self, fields: set[str], prompt: str, rng: random.Random) -> dict | str:
        """The answer for a prompt whose output fields are `fields` (a dict to send as JSON)."""
        if "weaknesses" in fields:
            return {"weaknesses": "- confuses mixed or negated statements\n- struggles with short, sarcastic texts"}
        if "hard_texts" in fields:
            n_hard = int(re.search(r"\[\[ ## n_hard ## \]\]\n(\d+)", prompt).group(1))
            n_easy = int(re.search(r"\[\[ ## n_easy ## \]\]\n(\d+)", prompt).group(1))
            picks = rng.sample(self.pool, min(len(self.pool), n_hard + n_easy))
            return {"hard_texts": [r["text"] for r in picks[:n_hard]], "easy_texts": [r["text"] for r in picks[n_hard:]]}
        if "subtopics" in fields:  # a label's subtopics (evokd-attr): fixed, well-formed, one a duplicate
            n = int(re.search(r"\[\[ ## n ## \]\]\n(\d+)", prompt).group(1))
            return {"subtopics": [f"scripted subtopic {i}" for i in range(1, n)] + ["Scripted subtopic 1."]}
        if "texts" in fields or "rewrites" in fields:  # class-conditioned generation / paraphrases of a seed
            n = int(re.search(r"\[\[ ## n ## \]\]\n(\d+)", prompt).group(1))
            # the last match: DSPy's system message shows the field layout with a "{label}" placeholder first
            label = re.findall(r"\[\[ ## label ## \]\]\n(.*?)\n", prompt)[-1].split(" (")[0].strip()
            same = [r for r in self.pool if r.get("label") == label] or self.pool
            picks = [r["text"] for r in rng.sample(same, min(len(same), n))]
            # mostly of the asked class, sometimes another one, so the agreement filter has work to do
            if picks and rng.random() < self.label_noise:
                picks[-1] = rng.choice(self.pool)["text"]
            return {"texts" if "texts" in fields else "rewrites": picks}
        if "hard_examples" in fields:
            n_hard = int(re.search(r"\[\[ ## n_hard ## \]\]\n(\d+)", prompt).group(1))
            n_easy = int(re.search(r"\[\[ ## n_easy ## \]\]\n(\d+)", prompt).group(1))
            picks = rng.sample(self.pool, min(len(self.pool), n_hard + n_easy))
            ex = [{"text": r["text"], "entities": self._mentions(r["text"], r["entities"])} if "entities" in r
                  else {"text": r["text"], "label": r["label"]} for r in picks]
            return {"hard_examples": ex[:n_hard], "easy_examples": ex[n_hard:]}
        if "entities" in fields:
            text = _last_text(prompt)
            spans = list(self.gold.get(text) or [])
            if spans and rng.random() < self.label_noise:
                spans.pop(rng.randrange(len(spans)))  # a missed entity
            mentions = self._mentions(text, spans)
            if self.extra_mention:
                mentions.append({"text": self.extra_mention, "type": self.labels[0]})
            return {"entities": mentions}
        if "label" in fields:
            text = _last_text(prompt)
            label = self.gold.get(text, self.labels[0])
            if rng.random() < self.label_noise or label == self.blind_to:
                label = rng.choice([lab for lab in self.labels if lab not in (label, self.blind_to)])
            return {"label": label}
        if fields:  # an optimiser's own step (instruction proposals, summaries): a fixed, well-formed answer
            return {f: f"Scripted {f.replace('_', ' ')}: read the label meanings and the examples carefully."
                    for f in sorted(fields)}
        # plain-text request (GEPA's reflection asks for the new instruction between ``` fences)
        return "```\nScripted instruction: read the label meanings and the examples carefully, then answer.\n```"

    @staticmethod
    def _mentions(text: str, spans: list[dict]) -> list[dict]:
        return [{"text": text[s["start"]:s["end"]], "type": s["label"]} for s in spans]

    def complete(self, request):
        self.n_calls += 1
        if self.fail_every and self.n_calls % self.fail_every == 0:
            out = "{ this is truncated"
        else:
            answer = self._answer(request, self._rng_for(request))
            out = answer if isinstance(answer, str) else json.dumps(answer)
        n_in = sum(len((m.text or "").split()) for m in request.messages)
        return Response(id=None, model="scripted", message=Message.assistant((TextPart(out),)), finish_reason="stop",
                        usage=Usage(input_tokens=n_in, output_tokens=len(out.split())), logprobs=self._logprobs(request, out))

    FAVOURED_GOLD, FAVOURED_BOOST = 0.7, 4.0  # with `favoured`: the gold label's share, and the favoured one's factor

    def distribution(self, prompt: str) -> dict[str, float]:
        """With `favoured`: every label's probability for the prompt's text, the gold label FAVOURED_GOLD and the
        others the rest evenly, then the favoured label multiplied by FAVOURED_BOOST and all renormalised, so
        the favoured label wins texts of other labels (on 2 labels, all of them) until divided by its mean."""
        gold = self.gold.get(_last_text(prompt), self.labels[0])
        raw = {lab: self.FAVOURED_GOLD if lab == gold else (1 - self.FAVOURED_GOLD) / (len(self.labels) - 1)
               for lab in self.labels}
        raw[self.favoured] *= self.FAVOURED_BOOST
        total = sum(raw.values())
        return {lab: p / total for lab, p in raw.items()}

    def _logprobs(self, request, out: str):
        """A plain question's answer with its probability, as the embedded teacher gives it: higher for the gold
        label than for a noisy one (with `favoured`, every label listed with its `distribution` probability).
        None when logprobs were not asked for or the answer is not a bare label."""
        if request.config.logprobs is None or out not in self.labels or not request.messages:
            return None
        prompt = "\n".join(m.text or "" for m in request.messages)
        if self.favoured:
            scores = self.distribution(prompt)
            return (TokenLogprob(token=out, logprob=math.log(scores[out]),
                                 top=tuple(TopLogprob(token=lab, logprob=math.log(p)) for lab, p in scores.items())),)
        p = self.GOLD_PROBABILITY if self.gold.get(_last_text(prompt)) == out else self.NOISE_PROBABILITY
        return (TokenLogprob(token=out, logprob=math.log(p)),)

    def stream(self, request):
        return response_to_events(self.complete(request))

    def close(self):
        pass


def scripted_lm(pool: list[dict], labels: list[str], **kwargs) -> dspy.LM:
    """A `dspy.LM` backed by `ScriptedEngine` (TEST DOUBLE)."""
    return dspy.LM("scripted/test-double", engine=ScriptedEngine(pool, labels, **kwargs), cache=False, temperature=0.8)
