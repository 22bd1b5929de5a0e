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


def estimate_run(task: TaskSpec, config, model: str) -> dict:
    """Calls and tokens of `config.rounds` rounds with the task's real prompts (see module doc)."""
    from evokd.loop import generation_chars
    from evokd.teacher.gateway import TeacherGateway, price_per_token
    from evokd.teacher.module import Feedback, Teacher

    meter = _PromptMeter(model)
    seeds = task.seed_rows()
    demos = seeds[: config.demonstrations_per_label * max(1, len(task.labels))]
    teacher = Teacher(task, TeacherGateway(meter), demonstrations=demos, max_attempts=1,
                      max_chars=generation_chars(seeds, config.max_chars))
    target = task.target_key
    batch = seeds[: config.per_round] or seeds
    half = len(batch) // 2
    feedback = Feedback(
        wrong=[{"text": r["text"], "gold": r[target], "pred": [] if task.is_ner else r[target]} for r in batch[:half]],
        correct=[{"text": r["text"], "gold": r[target]} for r in batch[half:]],
        error_stats="\n".join(f"{label}: 1 of 2 wrong" for label in task.label_names),
        score_history=[0.5],
    )
    n_hard = config.per_round if not config.use_easy else math.ceil(config.per_round / 2)
    steps = []

    def measure(step: str, calls: int, fn) -> None:
        before = len(meter.seen)
        fn()
        chars, cap = meter.seen[before]
        steps.append(StepEstimate(step, calls, math.ceil(chars / CHARS_PER_TOKEN), cap))

    strat = config.strat
    mode = "free" if task.is_ner and strat.generation == "class" else strat.generation
    rounds = config.rounds if strat.adds_samples else 0
    k = len(task.label_names)
    sample = batch[0]["text"] if batch else "an example input"
    label_calls = config.per_round * (1 if task.is_ner else config.label_votes)
    labels_by_teacher = config.separate_labeling and not (strat.needs_pool and config.oracle) and mode not in (
        "static", "paraphrase")
    warm = 1 if strat.warmup and rounds else 0
    if strat.analysis and rounds:
        # calls are per round on average: the warm-up round has no analysis
        measure("analyze", (rounds - warm) / rounds,
                lambda: teacher.analyze_weaknesses(1, feedback, use_correct=config.correct_feedback))
    if mode == "free":
        if config.separate_labeling:
            measure("generate", 1, lambda: teacher.generate_inputs(1, _ANALYSIS_STAND_IN, [], n_hard, config.per_round - n_hard))
        else:
            labels_by_teacher = False
            measure("generate_labeled", 1,
                    lambda: teacher.generate_labeled_inputs(1, _ANALYSIS_STAND_IN, [], n_hard, config.per_round - n_hard))
    elif mode in ("class", "static"):
        classes = min(k, config.per_round)
        per_class = math.ceil(config.per_round / classes)
        kinds = 2 if mode == "class" and config.use_easy and per_class > 1 else 1
        calls = classes if mode == "static" else (warm * classes + (rounds - warm) * classes * kinds) / max(rounds, 1)
        measure("generate", calls, lambda: teacher.generate_for_label(
            1, _ANALYSIS_STAND_IN, "hard", task.label_names[0], math.ceil(per_class / kinds)))
    elif mode == "paraphrase":
        measure("paraphrase", math.ceil(config.per_round / 2), lambda: teacher.paraphrase_text(
            1, sample, batch[0]["label"] if batch else task.label_names[0], 2))
    if labels_by_teacher:
        label = (lambda: teacher.label_entities(1, sample)) if task.is_ner else (lambda: teacher.label_text(1, sample))
        measure("label", label_calls, label)
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
        "steps": [s.__dict__ for s in steps],
        "calls": calls, "calls_worst_case": worst_calls,
        "prompt_tokens": prompt, "completion_tokens_max": completion, "tokens_max": prompt + completion,
        "cost_usd_max": cost,
        "note": f"prompt tokens measured on the formatted prompts at ~{CHARS_PER_TOKEN} chars/token; "
                "completion tokens are the per-step caps (an upper bound); worst case counts every retry and top-up",
    }
