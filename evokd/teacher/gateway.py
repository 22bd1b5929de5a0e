"""The one door every teacher call goes through: call cache, rate limits, retries, budgets.

Why a wrapper around `dspy.LM` and not DSPy's own knobs: a paid call must be (1) stored with
the run the moment it returns, so a killed run never pays for it twice; (2) counted against
the user's budget before it is sent; (3) retried on 429/5xx/timeouts with backoff, jitter and
`Retry-After`, with every failed attempt visible in the `calls` table; (4) paced by a
requests/min and tokens/min limiter shared by all threads that talk to the same provider.
DSPy's retry loop and disk cache do none of these per run, so the inner LM runs with
`num_retries=0` and `cache=False`, and this class does the rest.

The adapter calls `gateway(messages=..., **lm_kwargs)`; everything else (capabilities, model
name) is read through to the inner LM, so DSPy programs cannot tell the difference.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import dspy
from dspy.clients._deprecation import adapter_message_call
from dspy.clients.base_lm import BaseLM

from evokd.errors import EvokdError, scrub_secrets


class TeacherUnreachable(EvokdError):
    """The provider refused the configuration (bad key, unknown model): no retry can help."""


class BudgetExceeded(EvokdError):
    """A user-set budget (tokens, cost, calls) is spent; the run stops cleanly and can be resumed."""

    exit_code = 3


@dataclass
class GatewayConfig:
    concurrency: int = 1  # parallel teacher calls within a step (labeling); the local teacher stays at 1
    rpm: float | None = None  # requests per minute, per provider
    tpm: float | None = None  # tokens per minute, per provider
    timeout_s: float | None = None  # per-call timeout (hosted teachers)
    max_retries: int = 5  # retries of a transient failure (429, 5xx, timeout, connection)
    backoff_s: float = 1.0  # first backoff; doubles each retry, with full jitter, capped at backoff_max_s
    backoff_max_s: float = 60.0
    max_tokens: int | None = None  # budget: prompt + completion tokens over the whole run
    max_cost: float | None = None  # budget: USD over the whole run
    max_calls: int | None = None  # budget: requests sent over the whole run

    def __post_init__(self):
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")


@dataclass
class Spent:
    tokens: int = 0
    cost: float = 0.0
    calls: int = 0


class CallCache(Protocol):
    """Persistent cache of completed teacher calls, stored with the run (see Store.cache_*)."""

    def cache_get(self, key: str) -> dict | None: ...

    def cache_put(self, key: str, record: dict) -> None: ...

    def cache_spent(self) -> Spent: ...


@dataclass
class Attempt:
    """One request (or cache hit) as the calls table shows it."""

    ok: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost: float | None = None
    cached: bool = False
    error: str | None = None
    raw: str | None = None
    cached_tokens: int | None = None  # prompt tokens the teacher already held, when it says


# ── rate limiting ──────────────────────────────────────────────────────────


class RateLimiter:
    """Token buckets for requests/min and tokens/min, shared by threads.

    Requests are paced, not burst: the request bucket holds one second's worth, so a limit of
    600 rpm sends about 10 requests a second rather than 600 at once and then nothing for a
    minute (which providers' per-second limits would refuse). Tokens are reserved with an
    estimate before the call and corrected with the real count after it.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, burst_s: float = 1.0):
        self.rpm, self.tpm = rpm, tpm
        self.clock, self.sleep = clock, sleep
        self._lock = threading.Lock()
        self._req_cap = max(1.0, rpm * burst_s / 60) if rpm else 0.0
        self._tok_cap = max(1.0, tpm * 10 / 60) if tpm else 0.0  # ten seconds' worth of tokens
        self._req, self._tok = self._req_cap, self._tok_cap
        self._last = clock()

    def _refill(self, now: float) -> None:
        dt, self._last = max(0.0, now - self._last), now
        if self.rpm:
            self._req = min(self._req_cap, self._req + dt * self.rpm / 60)
        if self.tpm:
            self._tok = min(self._tok_cap, self._tok + dt * self.tpm / 60)

    def acquire(self, est_tokens: int = 0) -> list | None:
        """Block until a request may go out; returns a handle to correct the token count with."""
        if not self.rpm and not self.tpm:
            return None
        while True:
            with self._lock:
                self._refill(self.clock())
                need_tok = min(float(est_tokens), self._tok_cap)
                wait = 0.0
                eps = 1e-9  # float refills land a hair short of a whole request
                if self.rpm and self._req < 1.0 - eps:
                    wait = max(wait, (1.0 - self._req) * 60 / self.rpm)
                if self.tpm and self._tok < need_tok - eps:
                    wait = max(wait, (need_tok - self._tok) * 60 / self.tpm)
                if wait <= 0:
                    if self.rpm:
                        self._req -= 1.0
                    if self.tpm:
                        self._tok -= est_tokens
                    return [est_tokens]
            self.sleep(min(wait, 1.0))

    def settle(self, handle: list | None, tokens: int) -> None:
        """Charge the real token count instead of the estimate made in `acquire`."""
        if handle is not None and self.tpm:
            with self._lock:
                self._tok -= tokens - handle[0]
                handle[0] = tokens


_limiters: dict[tuple, RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(provider: str, rpm: float | None, tpm: float | None) -> RateLimiter:
    """One limiter per (provider, limits) in this process, so parallel runs share it."""
    with _limiters_lock:
        key = (provider, rpm, tpm)
        if key not in _limiters:
            _limiters[key] = RateLimiter(rpm, tpm)
        return _limiters[key]


# ── prices ─────────────────────────────────────────────────────────────────


def price_per_token(model: str) -> tuple[float, float] | None:
    """(input, output) USD per token from LiteLLM's bundled price table, or None when unknown."""
    if model.startswith("local/") or model.startswith("scripted/"):
        return (0.0, 0.0)
    try:
        import litellm

        table = litellm.model_cost
    except Exception:  # noqa: BLE001 - no table means unknown price
        return None
    for key in (model, model.split("/", 1)[-1]):
        entry = table.get(key)
        if entry and entry.get("input_cost_per_token") is not None:
            return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token") or 0.0)
    return None


# ── the gateway ────────────────────────────────────────────────────────────


def _jsonable(value: Any) -> Any:
    """Sampling kwargs as stable JSON: a pydantic response_format becomes its schema."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return value.model_json_schema()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def call_key(model: str, messages: Any, kwargs: dict) -> str:
    """What identifies a teacher call: model, messages, sampling parameters and rollout id."""
    payload = {"model": model, "messages": _jsonable(messages), "kwargs": _jsonable(kwargs)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def first_line(exc: BaseException) -> str:
    """An exception as one line for the calls table and messages, never longer than 500 chars, keys scrubbed."""
    text = scrub_secrets(f"{type(exc).__name__}: {exc}".strip())
    return text.splitlines()[0][:500] if text else type(exc).__name__


def _output_text(outputs: list) -> str:
    if not outputs:
        return ""
    first = outputs[0]
    return first.get("text") or "" if isinstance(first, dict) else str(first)


class TeacherGateway(BaseLM):
    """A `dspy.BaseLM` that adds a run-local call cache, rate limits, retries and budgets."""

    def __init__(self, inner: dspy.LM, config: GatewayConfig | None = None, *, cache: CallCache | None = None,
                 limiter: RateLimiter | None = None, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None):
        super().__init__(model=inner.model, model_type=getattr(inner, "model_type", "chat"), cache=False,
                         **{k: v for k, v in inner.kwargs.items() if k in ("temperature", "max_tokens")})
        self.inner = inner
        self.config = config or GatewayConfig()
        self.cache = cache
        provider = inner.model.split("/", 1)[0]
        self.limiter = limiter or (limiter_for(provider, self.config.rpm, self.config.tpm)
                                   if (self.config.rpm or self.config.tpm) else RateLimiter())
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.prices = price_per_token(inner.model)
        if self.config.max_cost is not None and self.prices is None:
            raise EvokdError(f"--max-cost: no price is known for {inner.model}; use --max-tokens or --max-calls instead")
        self.spent = cache.cache_spent() if cache is not None else Spent()
        self._lock = threading.Lock()
        self._local = threading.local()
        self.logprobs_refused = False  # the teacher refused a request for logprobs; they are no longer asked for

    # read-through to the inner LM (the adapter asks these) ------------------------------------
    @property
    def supports_response_schema(self) -> bool:
        return self.inner.supports_response_schema

    @property
    def supported_params(self) -> set[str]:
        return self.inner.supported_params

    @property
    def supports_function_calling(self) -> bool:
        return self.inner.supports_function_calling

    @property
    def supports_reasoning(self) -> bool:
        return self.inner.supports_reasoning

    @property
    def is_local(self) -> bool:
        return self.inner.model.startswith("local/")

    def _inner_for_thread(self) -> dspy.LM:
        # A private copy per thread: its history holds this thread's usage only.
        lm = getattr(self._local, "inner", None)
        if lm is None:
            lm = self._local.inner = self.inner.copy()
        return lm

    # events read by the Teacher ---------------------------------------------------------------
    def take_attempts(self) -> list[Attempt]:
        attempts = getattr(self._local, "attempts", [])
        self._local.attempts = []
        return attempts

    def _record(self, attempt: Attempt) -> None:
        if not hasattr(self._local, "attempts"):
            self._local.attempts = []
        self._local.attempts.append(attempt)

    # budgets ----------------------------------------------------------------------------------
    def _check_budget(self) -> None:
        c, s = self.config, self.spent
        if c.max_tokens is not None and s.tokens >= c.max_tokens:
            raise BudgetExceeded(f"token budget reached: {s.tokens:,} of --max-tokens {c.max_tokens:,} spent")
        if c.max_calls is not None and s.calls >= c.max_calls:
            raise BudgetExceeded(f"call budget reached: {s.calls:,} of --max-calls {c.max_calls:,} sent")
        if c.max_cost is not None and s.cost >= c.max_cost:
            raise BudgetExceeded(f"cost budget reached: ${s.cost:.4f} of --max-cost ${c.max_cost:.4f} spent")

    def _cost(self, prompt_tokens: int, completion_tokens: int, reported: float | None) -> float | None:
        if reported is not None:
            return float(reported)
        if self.prices is None:
            return None
        return prompt_tokens * self.prices[0] + completion_tokens * self.prices[1]

    # the call ---------------------------------------------------------------------------------
    def __call__(self, prompt=None, *, messages=None, **kwargs):
        if self.logprobs_refused:
            kwargs = _without_logprobs(kwargs)
        key = call_key(self.model, messages if messages is not None else prompt, kwargs)
        if self.cache is not None:
            with self._lock:
                hit = self.cache.cache_get(key)
            if hit is not None:
                self._record(Attempt(ok=True, prompt_tokens=hit["prompt_tokens"], completion_tokens=hit["completion_tokens"],
                                     cached=True, raw=_output_text(hit["outputs"])))
                return hit["outputs"]
        lm = self._inner_for_thread()
        est = sum(len(str(m.get("content", ""))) for m in (messages or [])) // 4 + int(kwargs.get("max_tokens") or 0)
        retries = 0
        while True:
            with self._lock:
                self._check_budget()
                self.spent.calls += 1
            handle = self.limiter.acquire(est)
            start = time.perf_counter()
            try:
                lm.history.clear()
                # The adapter's own message-dict call, forwarded: DSPy 3.4 marks it so it does not warn.
                with adapter_message_call(lm, messages):
                    outputs = lm(prompt=prompt, messages=messages, **kwargs)
            except Exception as exc:
                latency = time.perf_counter() - start
                self.limiter.settle(handle, 0)
                transient = _is_transient(exc)
                if kwargs.get("logprobs") and "logprob" in str(exc).lower():
                    # A served teacher that cannot return probabilities: ask again without, and never again.
                    self.logprobs_refused = True
                    self._record(Attempt(ok=False, latency_s=latency, error=f"{first_line(exc)} (asking without logprobs)"))
                    kwargs = _without_logprobs(kwargs)
                    key = call_key(self.model, messages if messages is not None else prompt, kwargs)
                    continue
                if not transient or retries >= self.config.max_retries:
                    self._record(Attempt(ok=False, latency_s=latency, error=first_line(exc)))
                    if _is_fatal(exc):
                        raise TeacherUnreachable(f"teacher {self.model}: {first_line(exc)}") from None
                    raise
                delay = self._backoff(retries, exc)
                self._record(Attempt(ok=False, latency_s=latency, error=f"{first_line(exc)} (retry in {delay:.1f} s)"))
                retries += 1
                self.sleep(delay)
                continue
            latency = time.perf_counter() - start
            entry = lm.history[-1] if lm.history else {}
            usage = entry.get("usage") or {}
            p_tok, c_tok = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            held = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
            cost = self._cost(p_tok, c_tok, entry.get("cost"))
            self.limiter.settle(handle, p_tok + c_tok)
            outputs = [o if isinstance(o, (str, dict)) else str(o) for o in outputs]
            record = {"outputs": outputs, "prompt_tokens": p_tok, "completion_tokens": c_tok, "cost": cost,
                      "model": self.model, "latency_s": latency}
            with self._lock:
                self.spent.tokens += p_tok + c_tok
                self.spent.cost += cost or 0.0
                if self.cache is not None:
                    self.cache.cache_put(key, record)
            self._record(Attempt(ok=True, prompt_tokens=p_tok, completion_tokens=c_tok, latency_s=latency, cost=cost,
                                 raw=_output_text(outputs), cached_tokens=None if held is None else int(held)))
            return outputs

    def _backoff(self, retry: int, exc: BaseException) -> float:
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, (int, float)) and 0 <= hint <= self.config.backoff_max_s:
            return float(hint)
        cap = min(self.config.backoff_max_s, self.config.backoff_s * (2 ** retry))
        return self.rng.uniform(cap / 2, cap)  # "equal jitter": never zero, never in lockstep

    def copy(self, **kwargs):
        return TeacherGateway(self.inner.copy(**kwargs), self.config, cache=self.cache, limiter=self.limiter,
                              sleep=self.sleep, rng=self.rng)


def _without_logprobs(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k not in ("logprobs", "top_logprobs")}


def _is_fatal(exc: BaseException) -> bool:
    """Authentication, billing, unknown model, missing configuration: stop the run, say why."""
    from dspy.utils import exceptions as ex

    return isinstance(exc, (ex.LMAuthError, ex.LMBillingError, ex.LMUnsupportedModelError, ex.LMConfigurationError))


def _is_transient(exc: BaseException) -> bool:
    """429, 5xx, timeouts and dropped connections are worth retrying; bad requests and auth are not."""
    from dspy.utils import exceptions as ex

    if isinstance(exc, (ex.LMRateLimitError, ex.LMServerError, ex.LMTimeoutError, ex.LMTransportError)):
        return True
    try:
        return bool(ex.is_retryable_lm_error(exc))
    except Exception:  # noqa: BLE001
        return False

