"""The Teacher: the paper's three LLM steps (weakness analysis, input generation, separate
labeling) as one DSPy module, with bounded retries and a log of every call.

Teacher output is untrusted: every step validates what comes back, retries a failed or empty
answer with a new rollout id, and returns what it could get. A step never raises because of
what the model wrote; failures are recorded in `calls` with their reason.
"""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import dspy

from evokd.errors import EvokdError
from evokd.filters import REASON_LABEL_DISAGREES, REASON_NO_LABEL, clean_generated
from evokd.store import CallRow
from evokd.task import TaskSpec
from evokd.task_kinds import ErrorStats
from evokd.teacher.adapter import PlainLabelAdapter, answer_distribution, answer_probability
from evokd.teacher.gateway import TeacherGateway, first_line
from evokd.teacher.wording import error_stats_text, without_quoted_examples
from evokd.teacher.answers import ANSWERS
from evokd.teacher.calibration import calibrate
from evokd.teacher.signatures import (AnalyzeWeaknesses, ListSubtopics, class_generate_signature, generate_signature,
                                     paraphrase_signature)


LABEL_FORMATS = ("plain", "json")


@dataclass
class Feedback:
    """What the student got wrong and right on the latest batch, computed by code."""

    wrong: list[dict]  # {"text", "gold", "pred"}
    correct: list[dict]  # {"text", "gold"}
    stats: ErrorStats  # per-label errors and confusions (evokd.task_kinds)
    score_history: list[float | None]

    @property
    def error_stats(self) -> str:
        """The statistics as the analysis prompt shows them."""
        return error_stats_text(self.stats)


def _generation_budget(n_items: int, per_item: int = 70) -> int:
    """Tokens for a generation call: room for n items of a sentence or two, and JSON around them."""
    return 64 + per_item * max(1, n_items)


def _per_item(max_chars: int) -> int:
    """Tokens of one generated text at the length cap (~4 characters a token), plus its JSON quoting."""
    return min(70, max_chars // 4 + 8)


def _held_tokens(answered: list) -> int | None:
    """Prompt tokens the teacher already held over a step's answered requests; None when it never said."""
    held = [a.cached_tokens for a in answered if a.cached_tokens is not None]
    return sum(held) if held else None


class Teacher(dspy.Module):
    MAX_ATTEMPTS = 3  # tries per step before it is recorded as failed

    def __init__(self, task: TaskSpec, lm: dspy.LM, *, demonstrations: list[dict] | None = None,
                 max_attempts: int = MAX_ATTEMPTS, seed: int = 0, max_examples_in_prompt: int = 8, max_chars: int = 300,
                 label_temperature: float | None = 0.0, label_format: str = "plain"):
        super().__init__()
        self.task = task
        self.gateway = lm if isinstance(lm, TeacherGateway) else TeacherGateway(lm)
        self.seed = seed
        self.max_attempts = max_attempts
        self.max_examples = max_examples_in_prompt
        self.demonstrations = demonstrations or []
        self.max_chars = max_chars
        # Labeling is a judgement, not writing: its first try (first vote) runs at this temperature
        # (0 = greedy; None = the LM's own). Retries and further votes sample at the LM's temperature,
        # so an agreement vote is a real second opinion.
        self.label_temperature = label_temperature
        # Batch calibration (evokd.teacher.calibration): each label's mean probability over texts not chosen
        # by class; when set, a label is the argmax of the probabilities divided by it. None or {} (estimation
        # tried and failed): raw labels.
        self.label_prior: dict[str, float] | None = None
        if label_format not in LABEL_FORMATS:
            raise ValueError(f"label_format {label_format!r}: expected one of {', '.join(LABEL_FORMATS)}")
        # How the classification labeling step is put to the teacher: "plain" (a short question answered
        # with a bare label name, evokd.teacher.adapter) or "json" (DSPy's JSONAdapter, as every other step).
        # NER labeling is always JSON (it returns a list of mentions).
        self.answers = ANSWERS[task.kind]  # what an answer is for this task kind (evokd.teacher.answers)
        self.label_format = self.answers.fixed_label_format or label_format
        self.analyze = dspy.Predict(AnalyzeWeaknesses)
        self.generate = dspy.Predict(generate_signature(max_chars))
        self.generate_class = dspy.Predict(class_generate_signature(max_chars))
        self.generate_class_with_properties = dspy.Predict(class_generate_signature(max_chars, with_properties=True))
        self.list_subtopics = dspy.Predict(ListSubtopics)
        self.paraphrase = dspy.Predict(paraphrase_signature(max_chars))
        self.label = dspy.Predict(self.answers.label_signature(task.label_names, max_chars))
        self.generate_labeled = dspy.Predict(self.answers.generate_labeled_signature(task.label_names, max_chars))
        self.calls: list[CallRow] = []
        self._calls_lock = threading.Lock()
        self.prompt_state: str | None = None  # digest of an optimised prompt state (evokd/prompts.py), if loaded

    # formatting ------------------------------------------------------------------
    def describe_labels(self) -> str:
        return "\n".join(f"- {lab.name}: {lab.description}" if lab.description else f"- {lab.name}" for lab in self.task.labels)

    def demonstrations_text(self) -> str:
        if not self.demonstrations:
            return "(none)"
        return "\n".join(self.answers.demonstration(d) for d in self.demonstrations)

    def _target_text(self, text: str, target) -> str:
        return self.answers.answer_text(text, target)

    def _examples_text(self, rows: list[dict], with_pred: bool) -> str:
        if not rows:
            return "(none)"
        lines = []
        for row in rows[: self.max_examples]:
            gold = self._target_text(row["text"], row["gold"])
            if with_pred:
                pred = self._target_text(row["text"], row["pred"])
                lines.append(f"- \"{row['text']}\" -> correct: {gold}; student predicted: {pred}")
            else:
                lines.append(f"- \"{row['text']}\" -> {gold}")
        return "\n".join(lines)

    # calls -------------------------------------------------------------------------
    def _rollout(self, round_: int, step: str, key: str, attempt: int) -> int:
        digest = hashlib.sha256(f"{self.seed}|{round_}|{step}|{key}|{attempt}".encode()).hexdigest()
        return int(digest[:12], 16)

    def label_adapter(self) -> dspy.Adapter:
        """The adapter the labeling step runs under (also `evokd optimize`'s LabelProgram)."""
        return PlainLabelAdapter() if self.label_format == "plain" else dspy.JSONAdapter()

    def _call(self, predictor: dspy.Predict, *, round_: int, step: str, key: str, validate, max_tokens: int,
              first_temperature: float | None = None, **inputs):
        """Run one step with retries; return the validated value or None.

        `max_tokens` bounds each call to what the step needs, so a weak model that keeps writing
        (40 texts when 8 were asked) is cut off early instead of burning minutes of CPU.
        `first_temperature`, when given, is the first attempt's temperature; retries sample at the
        LM's own (a greedy answer that failed validation would only fail again).
        """
        for attempt in range(1, self.max_attempts + 1):
            start = time.perf_counter()
            error = None
            value = None
            config = {"rollout_id": self._rollout(round_, step, key, attempt), "max_tokens": max_tokens}
            if attempt == 1 and first_temperature is not None:
                config["temperature"] = first_temperature
                if first_temperature == 0:
                    del config["rollout_id"]  # greedy: the same prompt gives the same answer, cached once
            try:
                adapter = self.label_adapter() if predictor is self.label else dspy.JSONAdapter()
                with dspy.context(lm=self.gateway, adapter=adapter):
                    pred = predictor(**inputs, config=config)
                value, error = validate(pred)
            except EvokdError as exc:  # budget spent, or a provider that refuses the key/model: stop the run
                self._log(round_, step, attempt, time.perf_counter() - start, f"stopped: {first_line(exc)}")
                raise
            except Exception as exc:  # teacher output is untrusted; any failure is recorded and retried
                error = first_line(exc)
            self._log(round_, step, attempt, time.perf_counter() - start, error)
            if error is None:
                return value
        return None

    def _log(self, round_: int, step: str, attempt: int, latency: float, error: str | None) -> None:
        """One calls row per step attempt, plus one per transport failure the gateway retried."""
        attempts = self.gateway.take_attempts()
        answered = [a for a in attempts if a.ok]
        rows = [CallRow(round=round_, step=step, attempt=attempt, model=self.gateway.model, prompt_tokens=0,
                        completion_tokens=0, latency_s=a.latency_s, ok=False, error=a.error, prompt_state=self.prompt_state)
                for a in attempts if not a.ok]
        if answered or not rows:
            costs = [a.cost for a in answered if a.cost is not None]
            rows.append(CallRow(
                round=round_, step=step, attempt=attempt, model=self.gateway.model,
                prompt_tokens=sum(a.prompt_tokens for a in answered), completion_tokens=sum(a.completion_tokens for a in answered),
                latency_s=latency, ok=error is None, error=error, cached=bool(answered) and all(a.cached for a in answered),
                cost=sum(costs) if costs else None, raw=answered[-1].raw if error is not None and answered else None,
                prompt_state=self.prompt_state, prompt_tokens_cached=_held_tokens(answered)))
        with self._calls_lock:
            self.calls.extend(rows)

    def drain_calls(self) -> list[CallRow]:
        with self._calls_lock:
            calls, self.calls = self.calls, []
        return calls

    # steps -------------------------------------------------------------------------
    def analyze_weaknesses(self, round_: int, feedback: Feedback, *, use_correct: bool = True) -> str | None:
        def validate(pred):
            # quoted example inputs are cut: the generation step would copy them (exact duplicates)
            text = without_quoted_examples((pred.weaknesses or "").strip())
            if len(text) < 10:
                return None, "empty or too short weakness analysis"
            return text, None

        history = ", ".join(f"round {i}: {s:.3f}" for i, s in enumerate(feedback.score_history) if s is not None)
        return self._call(
            self.analyze, round_=round_, step="analyze", key="", validate=validate, max_tokens=400,
            task=self.task.description, labels=self.describe_labels(), error_stats=feedback.error_stats,
            wrong_examples=self._examples_text(feedback.wrong, with_pred=True),
            correct_examples=self._examples_text(feedback.correct, with_pred=False) if use_correct else "(not shown)",
            score_history=history or "(no earlier rounds)",
        )

    def generate_inputs(self, round_: int, weaknesses: str, previous: list[str], n_hard: int, n_easy: int
                        ) -> tuple[list[str], list[str]]:
        def validate(pred):
            hard = [t for t in (clean_generated(x) for x in (pred.hard_texts or [])) if t]
            easy = [t for t in (clean_generated(x) for x in (pred.easy_texts or [])) if t]
            if not hard and not easy:
                return None, "generation returned no texts"
            return (hard[:n_hard], easy[:n_easy]), None

        out = self._call(
            self.generate, round_=round_, step="generate", key="", validate=validate,
            max_tokens=_generation_budget(n_hard + n_easy, _per_item(self.max_chars)),
            task=self.task.description, labels=self.describe_labels(), weaknesses=weaknesses,
            previous_weaknesses=self._previous_text(previous), n_hard=n_hard, n_easy=n_easy,
        )
        return out if out is not None else ([], [])

    def generate_labeled_inputs(self, round_: int, weaknesses: str, previous: list[str], n_hard: int, n_easy: int
                                ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        def pairs(items, limit):
            out = []
            for item in items or []:
                text = clean_generated(getattr(item, "text", ""))
                if not text:
                    continue
                out.append((text, self.answers.generated_answer(self, text, item)))
            return out[:limit]

        def validate(pred):
            hard, easy = pairs(pred.hard_examples, n_hard), pairs(pred.easy_examples, n_easy)
            if not hard and not easy:
                return None, "generation returned no examples"
            return (hard, easy), None

        out = self._call(
            self.generate_labeled, round_=round_, step="generate_labeled", key="", validate=validate,
            max_tokens=_generation_budget(n_hard + n_easy, per_item=90),
            task=self.task.description, labels=self.describe_labels(), weaknesses=weaknesses,
            previous_weaknesses=self._previous_text(previous), n_hard=n_hard, n_easy=n_easy,
        )
        return out if out is not None else ([], [])

    def generate_for_label(self, round_: int, weaknesses: str, kind: str, label: str, n: int,
                           *, attempt_key: str = "", properties: str | None = None) -> list[str]:
        """Class-conditioned generation: up to `n` texts meant to have `label` (kind: hard, easy or varied),
        each with `properties` when given (a length, a subtopic: evokd.loop.attributes)."""
        def validate(pred):
            texts = [t for t in (clean_generated(x) for x in (pred.texts or [])) if t]
            if not texts:
                return None, "generation returned no texts"
            return texts[:n], None

        predictor, extra, key = self.generate_class, {}, f"{kind}|{label}|{attempt_key}"
        if properties:
            predictor, extra, key = self.generate_class_with_properties, {"properties": properties}, \
                f"{kind}|{label}|{properties}|{attempt_key}"
        out = self._call(
            predictor, round_=round_, step="generate", key=key,
            validate=validate, max_tokens=_generation_budget(n, _per_item(self.max_chars)), task=self.task.description,
            labels=self.describe_labels(), weaknesses=weaknesses, kind=kind, label=label, **extra, n=n,
        )
        return out or []

    def subtopics_of(self, round_: int, label: str, n: int) -> list[str]:
        """Up to `n` distinct subtopics of `label`'s texts (AttrPrompt's class-specific attribute values);
        [] when the teacher gave fewer than 2 usable ones. Greedy first, so a resumed run that asks again
        (in another round) gets the same list."""
        def validate(pred):
            seen, out = set(), []
            for item in pred.subtopics or []:
                topic = " ".join(str(item).split()).strip(" .-*•")
                if 2 <= len(topic) <= 80 and topic.lower() not in seen:
                    seen.add(topic.lower())
                    out.append(topic)
            if len(out) < 2:
                return None, f"{len(out)} usable subtopic(s); expected 2 or more"
            return out[:n], None

        out = self._call(
            self.list_subtopics, round_=round_, step="subtopics", key=label, validate=validate, first_temperature=0.0,
            max_tokens=_generation_budget(n, per_item=12), task=self.task.description, labels=self.describe_labels(),
            label=label, n=n,
        )
        return out or []

    def paraphrase_text(self, round_: int, text: str, label: str, n: int, *, attempt_key: str = "") -> list[str]:
        """Up to `n` rewrites of a labeled text that keep its label (AugGPT-style augmentation)."""
        def validate(pred):
            texts = [t for t in (clean_generated(x) for x in (pred.rewrites or [])) if t and t != text]
            if not texts:
                return None, "paraphrase returned no new texts"
            return texts[:n], None

        out = self._call(
            self.paraphrase, round_=round_, step="paraphrase", key=f"{text}|{attempt_key}", validate=validate,
            max_tokens=_generation_budget(n, _per_item(self.max_chars)), task=self.task.description, label=label,
            text=text, n=n,
        )
        return out or []

    def label_vote_scored(self, round_: int, text: str, vote: int = 0) -> tuple[str | None, float | None]:
        """(label, the teacher's probability of it) from one labeling call; (None, None) when it gave none.

        The probability is None when the teacher returned none (a provider without logprobs).
        """
        allowed = set(self.task.label_names)

        def validate(pred):
            if pred.label not in allowed:
                return None, f"label {pred.label!r} not in the task's labels"
            return (pred.label, answer_probability(pred.get("logprobs"))), None

        out = self._call(
            self.label, round_=round_, step="label", key=f"{text}|{vote}" if vote else text, validate=validate,
            max_tokens=self.answers.label_max_tokens, first_temperature=self.label_temperature if vote == 0 else None,
            task=self.task.description, labels=self.describe_labels(), demonstrations=self.demonstrations_text(), text=text,
        )
        return out if out is not None else (None, None)

    def label_distribution(self, round_: int, text: str) -> dict[str, float] | None:
        """Every label's probability for `text`, from the labeling call `label_vote_scored` makes (the same
        prompt and cache key, so one call serves both); None when the teacher does not give them all (see
        `evokd.teacher.adapter.answer_distribution`; the embedded teacher always does)."""
        labels = self.task.label_names

        def validate(pred):  # a bad label is retried, as in label_vote_scored; missing probabilities are not
            if pred.label not in labels:
                return None, f"label {pred.label!r} not in the task's labels"
            return answer_distribution(pred.get("logprobs"), labels), None

        return self._call(
            self.label, round_=round_, step="label", key=text, validate=validate,
            max_tokens=self.answers.label_max_tokens, first_temperature=self.label_temperature,
            task=self.task.description, labels=self.describe_labels(), demonstrations=self.demonstrations_text(), text=text,
        )

    def label_calibrated(self, round_: int, text: str) -> tuple[str | None, float | None]:
        """(label, probability) after batch calibration by `label_prior`: the label whose probability, divided
        by its mean probability, is highest, and that share renormalised. The call is the one
        `label_vote_scored` makes; a teacher that gives no full distribution answers as it did uncalibrated."""
        distribution = self.label_distribution(round_, text)
        if distribution is None or not self.label_prior:
            return self.label_vote_scored(round_, text)
        calibrated = calibrate(distribution, self.label_prior)
        label = max(calibrated, key=calibrated.get)
        return label, calibrated[label]

    def label_vote(self, round_: int, text: str, vote: int = 0) -> str | None:
        return self.label_vote_scored(round_, text, vote)[0]

    def label_scored(self, round_: int, text: str, votes: int = 1) -> tuple[str | None, str | None, float | None]:
        """Label `votes` times (the first at `label_temperature`, the others sampled); keep the label only if all agree.

        Returns (label, None, confidence) or (None, reject reason, None); the confidence is the
        first vote's probability of the label. With a weak teacher, agreement filters out many
        wrong labels at the price of extra calls (none for the embedded teacher, which samples a
        later vote from the probabilities it scored for the first). With `label_prior` set, the first
        vote is `label_calibrated` (the same call); later votes are asked as before and must agree with it.
        """
        labels, confidence = [], None
        for vote in range(votes):
            label, probability = (self.label_calibrated(round_, text) if vote == 0 and self.label_prior
                                  else self.label_vote_scored(round_, text, vote))
            if label is None:
                return None, REASON_NO_LABEL, None
            labels.append(label)
            confidence = probability if vote == 0 else confidence
            if len(set(labels)) > 1:
                return None, REASON_LABEL_DISAGREES, None
        return labels[0], None, confidence

    def label_with_votes(self, round_: int, text: str, votes: int = 1) -> tuple[str | None, str | None]:
        """(label, None) or (None, reject reason): `label_scored` without the confidence."""
        return self.label_scored(round_, text, votes)[:2]

    def label_one(self, round_: int, text: str, votes: int = 1):
        """One text's labeling result, as `label_many` gives it."""
        return self.answers.label_one(self, round_, text, votes)

    def read_label(self, result) -> tuple:
        """(answer, notes, reject reason, confidence) of one `label_many` result."""
        return self.answers.read(result)

    def label_many(self, round_: int, texts: list[str], votes: int = 1, *, concurrency: int = 1,
                   on_done=None) -> list:
        """Label texts, `concurrency` calls at a time (hosted teachers); results keep the input order.

        Classification: (label, reject reason, confidence) per text, as `label_scored`. NER:
        what `label_entities` returns. The embedded teacher runs one call at a time whatever is asked.
        """
        one = lambda t: self.label_one(round_, t, votes)  # noqa: E731
        workers = 1 if self.gateway.is_local else max(1, concurrency)
        results: list = [None] * len(texts)
        if workers == 1 or len(texts) < 2:
            for i, text in enumerate(texts):
                results[i] = one(text)
                if on_done:
                    on_done(i + 1, len(texts))
            return results
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evokd-label") as pool:
            futures = {pool.submit(one, text): i for i, text in enumerate(texts)}
            done = 0
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    done += 1
                    if on_done:
                        on_done(done, len(texts))
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return results

    def place_mentions(self, text: str, mentions) -> tuple[list[dict], list]:
        """Turn the teacher's (mention, type) list into character spans; code, not the LLM, finds offsets."""
        from evokd.ner import locate_mentions

        pairs = [(getattr(m, "text", ""), getattr(m, "type", "")) for m in (mentions or [])]
        spans, rejected = locate_mentions(text, pairs, self.task.label_names)
        return spans, [list(r) for r in rejected]

    def label_entities(self, round_: int, text: str) -> tuple[list[dict], list] | None:
        """NER labeling: (spans, rejected mentions) or None if the teacher gave no usable answer."""

        def validate(pred):
            if pred.entities is None:
                return None, "no entity list"
            return self.place_mentions(text, pred.entities), None

        return self._call(
            self.label, round_=round_, step="label", key=text, validate=validate, max_tokens=self.answers.label_max_tokens,
            first_temperature=self.label_temperature,
            task=self.task.description, labels=self.describe_labels(), demonstrations=self.demonstrations_text(), text=text,
        )

    @staticmethod
    def _previous_text(previous: list[str]) -> str:
        if not previous:
            return "(none)"
        start = max(0, len(previous) - 3)
        return "\n".join(f"round {start + i + 1}: {p}" for i, p in enumerate(previous[start:]))
