"""Unit tests of the gateway's logic: limiter pacing, backoff, budgets and the call cache.

The rate limiter runs on a simulated clock; the inner LM is `dspy.utils.DummyLM` (a TEST DOUBLE)."""

from __future__ import annotations

import random

import dspy
import pytest
from dspy.utils import DummyLM
from dspy.utils.exceptions import LMRateLimitError

from evokd.teacher.gateway import BudgetExceeded, GatewayConfig, RateLimiter, Spent, TeacherGateway, call_key


class SimClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


@pytest.mark.parametrize("rpm", [60, 600, 3000])
def test_limiter_holds_the_request_rate_within_5_percent(rpm):
    clock = SimClock()
    limiter = RateLimiter(rpm=rpm, clock=clock, sleep=clock.sleep)
    n = rpm * 3  # three simulated minutes
    for _ in range(n):
        limiter.acquire()
    rate = n / clock.now * 60
    assert abs(rate - rpm) / rpm <= 0.05, rate
    # paced, not burst: no simulated second holds more than the one-second bucket plus one second's refill
    assert clock.now >= (n - max(1, rpm / 60)) * 60 / rpm - 1e-6


def test_limiter_charges_real_tokens_per_minute():
    clock = SimClock()
    limiter = RateLimiter(tpm=6000, clock=clock, sleep=clock.sleep)
    for _ in range(60):
        handle = limiter.acquire(est_tokens=50)
        limiter.settle(handle, 200)  # each call really used 200 tokens
    spent = 60 * 200
    assert spent / clock.now * 60 == pytest.approx(6000, rel=0.2)


class _Store(dict):
    """A dict standing in for the run store's call cache."""

    def cache_get(self, key):
        return self.get(key)

    def cache_put(self, key, record):
        self[key] = record

    def cache_spent(self):
        return Spent(tokens=sum(r["prompt_tokens"] + r["completion_tokens"] for r in self.values()), calls=len(self))


def test_cache_answers_a_repeated_call_without_calling_the_model():
    cache = _Store()
    inner = DummyLM([{"answer": "first"}, {"answer": "second"}])
    gw = TeacherGateway(inner, cache=cache)
    with dspy.context(lm=gw):
        a = dspy.Predict("question -> answer")(question="q", config={"rollout_id": 1})
        b = dspy.Predict("question -> answer")(question="q", config={"rollout_id": 1})
        c = dspy.Predict("question -> answer")(question="q", config={"rollout_id": 2})
    assert a.answer == b.answer == "first" and c.answer == "second"
    assert len(cache) == 2
    assert [x.cached for x in gw.take_attempts()] == [False, True, False]


def test_budget_stops_before_the_call_that_would_exceed_it():
    cache = _Store({"old": {"outputs": ["x"], "prompt_tokens": 90, "completion_tokens": 10, "cost": 0.0}})
    gw = TeacherGateway(DummyLM([{"answer": "a"}] * 5), GatewayConfig(max_tokens=100), cache=cache)
    with pytest.raises(BudgetExceeded, match="token budget reached: 100 of --max-tokens 100"):
        with dspy.context(lm=gw):
            dspy.Predict("question -> answer")(question="q")


def test_transient_errors_retry_with_backoff_and_retry_after():
    slept = []

    class Flaky(DummyLM):
        fails = 2

        def __call__(self, *args, **kwargs):
            if Flaky.fails:
                Flaky.fails -= 1
                raise LMRateLimitError("slow down", model="dummy", retry_after=0.25 if Flaky.fails else None)
            return super().__call__(*args, **kwargs)

    gw = TeacherGateway(Flaky([{"answer": "ok"}]), GatewayConfig(backoff_s=1.0), sleep=slept.append,
                        rng=random.Random(0))
    with dspy.context(lm=gw):
        assert dspy.Predict("question -> answer")(question="q").answer == "ok"
    attempts = gw.take_attempts()
    assert [a.ok for a in attempts] == [False, False, True]
    assert slept[0] == 0.25  # Retry-After honoured
    assert 1.0 <= slept[1] <= 2.0  # then exponential backoff with jitter (second retry: cap 2 s, equal jitter)


def test_call_key_depends_on_messages_params_and_rollout():
    base = call_key("m", [{"role": "user", "content": "hi"}], {"temperature": 0.8, "rollout_id": 1})
    assert base == call_key("m", [{"role": "user", "content": "hi"}], {"rollout_id": 1, "temperature": 0.8})
    assert base != call_key("m", [{"role": "user", "content": "hi"}], {"temperature": 0.8, "rollout_id": 2})
    assert base != call_key("m", [{"role": "user", "content": "ho"}], {"temperature": 0.8, "rollout_id": 1})
    assert base != call_key("m2", [{"role": "user", "content": "hi"}], {"temperature": 0.8, "rollout_id": 1})


def test_a_teacher_that_refuses_logprobs_is_asked_again_without_them_and_never_again():
    """TEST DOUBLE: an OpenAI-compatible server that rejects the logprobs parameter (as a server built without
    them does). The labeling answer still comes back, without a probability, and later calls do not ask."""
    from dspy.utils.exceptions import LMInvalidRequestError

    seen = []

    class NoLogprobs(DummyLM):
        def __call__(self, *args, **kwargs):
            seen.append(bool(kwargs.get("logprobs")))
            if kwargs.get("logprobs"):
                raise LMInvalidRequestError("logprobs is not supported by this server", model="dummy")
            return super().__call__(*args, **kwargs)

    gw = TeacherGateway(NoLogprobs([{"answer": "ok"}] * 3))
    with dspy.context(lm=gw):
        first = dspy.Predict("question -> answer")(question="q", config={"logprobs": True, "top_logprobs": 2})
        second = dspy.Predict("question -> answer")(question="r", config={"logprobs": True, "top_logprobs": 2})
    assert first.answer == second.answer == "ok" and first.get("logprobs") is None
    assert seen == [True, False, False] and gw.logprobs_refused
    attempts = gw.take_attempts()
    assert [a.ok for a in attempts] == [False, True, True] and "asking without logprobs" in attempts[0].error
