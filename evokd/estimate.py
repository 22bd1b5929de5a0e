"""`evokd generate --dry-run`: how many teacher calls and tokens a run will spend, before spending any.

The prompts are measured, not guessed: each teacher step is run once against a meter that
records the exact messages DSPy formats (and refuses to answer), so the estimate follows
every change to the prompts. Prompt tokens are counted at ~4 characters per token (the
provider's own tokenizer is not available offline); completion tokens are the per-step caps,
so the completion figure is an upper bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dspy.clients.base_lm import BaseLM

from evokd.task import TaskSpec

CHARS_PER_TOKEN = 4
_ANALYSIS_STAND_IN = ("- misreads negated or mixed statements\n- confuses short sarcastic texts with literal ones\n"
                      "- fails on domain words it has not seen in training")
_PROPERTIES_STAND_IN = "length: about 12 words; subtopic: a typical subtopic of the label"  # evokd-attr's requests


class _Measured(Exception):
    """Raised by the meter after recording a prompt: nothing is sent anywhere."""


class _PromptMeter(BaseLM):
    def __init__(self, model: str):
        super().__init__(model=model, cache=False)
        self.seen: list[tuple[int, int]] = []  # (prompt chars, max_tokens)

    @property
    def supports_response_schema(self) -> bool:
        return True

    @property
    def supported_params(self) -> set[str]:
        return {"response_format", "temperature", "max_tokens"}

    def __call__(self, prompt=None, *, messages=None, **kwargs):
        chars = sum(len(str(m.get("content", ""))) for m in messages or []) + len(prompt or "")
        self.seen.append((chars, int(kwargs.get("max_tokens") or 0)))
        raise _Measured("dry run")

    def copy(self, **kwargs):
        return self


@dataclass
class StepEstimate:
    step: str
    calls_per_round: float  # an average when rounds differ (a warm-up round has no analysis)
    prompt_tokens: int  # per call
    max_completion_tokens: int  # per call


def planned_calls(task: TaskSpec, config, plan=None) -> list[dict[str, int]]:
    """First-attempt teacher calls by step, one dict per round that adds samples (round 1 first),
    asked of the same source object the run uses (evokd.loop.sources). Top-ups and retries are not
    counted (they depend on the answers); the class budget is the even split (the run's follows the
    student's errors) and every generated text is assumed to reach the labeling step. A pool strategy's
    first round counts the labeling calls that calibrate the teacher's labels (at most
    `CALIBRATION_TEXTS`; `evokd.loop.sources.pool.calibrate_labels`)."""
    from evokd.loop.config import settle
    from evokd.loop.sources import Context, make_source

    plan = plan or settle(config, task)
    source = make_source(Context(task, plan, [], None, None, None, lambda *a, **k: None))
    rounds = []
    for round_ in range(1, plan.rounds + 1):
        calls = {"analyze": 1} if plan.analyzes(round_) else {}
        if source is not None:
            calls.update(source.plan_calls(round_, source.budget(round_, None)))
            label = source.labeling_calls(config.per_round)
            if label:
                calls["label"] = calls.get("label", 0) + label  # plus a pool's calibration texts (round 1)
        rounds.append(calls)
    return rounds


def estimate_run(task: TaskSpec, config, model: str) -> dict:
    """Calls and tokens of `config.rounds` rounds with the task's real prompts (see module doc)."""
    from evokd.loop.attributes import SUBTOPICS_PER_LABEL
    from evokd.loop.config import generation_chars, settle
    from evokd.loop.teacher_setup import seed_demonstrations
    from evokd.task_kinds import ErrorStats, LabelErrors
    from evokd.teacher.gateway import TeacherGateway, price_per_token
    from evokd.teacher.teacher import Feedback, Teacher

    meter = _PromptMeter(model)
    seeds = task.seed_rows()
    demos = seed_demonstrations(task, seeds, config.demonstrations_per_label)
    teacher = Teacher(task, TeacherGateway(meter), demonstrations=demos, max_attempts=1,
                      max_chars=generation_chars(seeds, config.max_chars))
    target = task.target_key
    batch = seeds[: config.per_round] or seeds
    half = len(batch) // 2
    feedback = Feedback(
        wrong=[{"text": r["text"], "gold": r[target], "pred": task.rules.no_answer} for r in batch[:half]],
        correct=[{"text": r["text"], "gold": r[target]} for r in batch[half:]],
        stats=ErrorStats([LabelErrors(label, 1, 2) for label in task.label_names], [], "wrong"),
        score_history=[0.5],
    )
    plan = settle(config, task)
    per_round = planned_calls(task, config, plan)
    rounds = len(per_round)
    sample = batch[0]["text"] if batch else "an example input"
    label = batch[0].get("label") if batch else None
    n = config.per_round
    n_hard = n if not config.use_easy else math.ceil(n / 2)
    per_class = math.ceil(n / min(len(task.label_names), n))
    per_call = math.ceil(per_class / (2 if plan.mode == "class" and config.use_easy and per_class > 1 else 1))
    samples = {  # one call of each step, measured on the meter
        "analyze": lambda: teacher.analyze_weaknesses(1, feedback, use_correct=config.correct_feedback),
        "generate": (lambda: teacher.generate_inputs(1, _ANALYSIS_STAND_IN, [], n_hard, n - n_hard)) if plan.mode == "free"
                    else (lambda: teacher.generate_for_label(1, _ANALYSIS_STAND_IN, "hard", task.label_names[0], per_call,
                                                             properties=_PROPERTIES_STAND_IN if plan.strategy.attributes
                                                             else None)),
        "subtopics": lambda: teacher.subtopics_of(1, task.label_names[0], SUBTOPICS_PER_LABEL),
        "generate_labeled": lambda: teacher.generate_labeled_inputs(1, _ANALYSIS_STAND_IN, [], n_hard, n - n_hard),
        "paraphrase": lambda: teacher.paraphrase_text(1, sample, label or task.label_names[0], 2),
        "label": lambda: teacher.label_one(1, sample),
    }
    steps = []
    for step in dict.fromkeys(s for r in per_round for s in r):
        before = len(meter.seen)
        samples[step]()
        chars, cap = meter.seen[before]
        calls = sum(r.get(step, 0) for r in per_round) / max(rounds, 1)
        steps.append(StepEstimate(step, calls, math.ceil(chars / CHARS_PER_TOKEN), cap))
    calls = math.ceil(sum(s.calls_per_round for s in steps) * rounds)
    prompt = math.ceil(sum(s.calls_per_round * s.prompt_tokens for s in steps) * rounds)
    completion = math.ceil(sum(s.calls_per_round * s.max_completion_tokens for s in steps) * rounds)
    # Worst case: every generation call topped up, every step retried to its limit.
    worst_calls = math.ceil(sum(s.calls_per_round * (1 + (config.generation_topups if s.step != "analyze" else 0))
                                for s in steps) * rounds * Teacher.MAX_ATTEMPTS)
    prices = price_per_token(model)
    cost = None if prices is None else prompt * prices[0] + completion * prices[1]
    return {
        "model": model, "rounds": rounds, "per_round": config.per_round,
        "steps": [s.__dict__ for s in steps], "calls_by_round": per_round,
        "calls": calls, "calls_worst_case": worst_calls,
        "prompt_tokens": prompt, "completion_tokens_max": completion, "tokens_max": prompt + completion,
        "cost_usd_max": cost,
        "note": f"prompt tokens measured on the formatted prompts at ~{CHARS_PER_TOKEN} chars/token; "
                "completion tokens are the per-step caps (an upper bound); worst case counts every retry and top-up",
    }
