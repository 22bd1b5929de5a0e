"""Turn a `--teacher` string into a `dspy.LM`.

`local` is the embedded offline model (extra `[local]`); anything with a provider prefix goes to
DSPy/LiteLLM as is (`openai/gpt-4o-mini`, `anthropic/...`, `ollama_chat/...`, or `openai/NAME` with
`--api-base` for a vLLM / llama.cpp server). Other providers can be plugged in through the
`evokd.teachers` entry-point group or `register_teacher`, without touching this module.
Keys come from the provider's usual environment variables and are never stored by evokd.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Callable

import dspy

from evokd.errors import EvokdError

TeacherFactory = Callable[..., dspy.LM]
_registry: dict[str, TeacherFactory] = {}


def register_teacher(prefix: str, factory: TeacherFactory) -> None:
    """Make `--teacher PREFIX` or `--teacher PREFIX/...` build its LM with `factory(teacher, **settings)`."""
    _registry[prefix] = factory


def _lookup(prefix: str) -> TeacherFactory | None:
    if prefix in _registry:
        return _registry[prefix]
    for ep in entry_points(group="evokd.teachers"):
        if ep.name == prefix:
            _registry[prefix] = ep.load()
            return _registry[prefix]
    return None


def make_lm(
    teacher: str,
    *,
    api_base: str | None = None,
    temperature: float = 0.8,
    max_tokens: int = 1500,
    cache: bool = False,
    timeout: float | None = None,
) -> dspy.LM:
    """The teacher's LM. DSPy's own cache and retries are off: evokd's gateway caches every
    call with the run and retries with backoff itself (evokd/teacher/gateway.py)."""
    teacher = teacher.strip()
    prefix = teacher.split("/", 1)[0]
    factory = _lookup(prefix)
    if factory is not None:
        return factory(teacher, api_base=api_base, temperature=temperature, max_tokens=max_tokens, cache=cache)
    if teacher == "local":
        from evokd.teacher.local import make_local_lm

        return make_local_lm(temperature=temperature, max_tokens=max_tokens)
    if "/" not in teacher or teacher.endswith("/"):
        raise EvokdError(
            f"--teacher {teacher!r}: expected 'local' or a provider/model string such as "
            "openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest or openai/NAME with --api-base"
        )
    kwargs: dict = {"temperature": temperature, "max_tokens": max_tokens, "cache": cache, "num_retries": 0}
    if timeout:
        kwargs["timeout"] = timeout
    if api_base:
        kwargs["api_base"] = api_base
        # A self-hosted OpenAI-compatible server usually needs no key, but the client insists on one.
        if prefix == "openai" and not os.environ.get("OPENAI_API_KEY"):
            kwargs["api_key"] = "no-key-needed"
    return dspy.LM(teacher, **kwargs)
