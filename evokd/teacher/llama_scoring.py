"""Label probabilities from one forward pass, on a llama.cpp model whose KV cache keeps the last prompt.

Why scoring and not decoding: a labeling answer is one of a few names. Decoding it under a grammar
costs a token-by-token loop and gives no probability; scoring reads the prompt once (most of it
already in the KV cache from the previous text) and reads each label's probability off the logits.

- `prompt_tokens` renders chat messages with the model's own chat template (the GGUF's, as
  llama-cpp-python's chat completion does) and tokenizes them.
- `evaluate` reuses the longest prefix the KV cache already holds and evaluates only the rest;
  it returns how many tokens it reused and evaluated, which is what a call really cost.
- `choice_logprobs` gives each label's log probability under the same constraint the old grammar
  imposed: at every point where label token sequences branch, the model's next-token distribution
  is renormalised over the allowed tokens (a label that is a prefix of another competes with the end
  token). Labels whose first tokens differ (the usual case) need nothing beyond the prompt pass;
  otherwise each branching point costs one evaluation of the shared tokens before it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_END = -1  # the end of a label, scored with the model's end-of-turn token


def _formatter(llama):
    """The model's chat formatter, built once per Llama from its GGUF chat template."""
    formatter = getattr(llama, "_evokd_formatter", None)
    if formatter is None:
        from llama_cpp import llama_chat_format

        eos, bos = llama.token_eos(), llama.token_bos()
        formatter = llama_chat_format.Jinja2ChatFormatter(
            template=llama.metadata["tokenizer.chat_template"],
            eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        )
        llama._evokd_formatter = formatter
    return formatter


def prompt_tokens(llama, messages: list[dict[str, str]]) -> list[int]:
    """The tokens llama-cpp-python's chat completion would evaluate for these messages."""
    result = _formatter(llama)(messages=messages)
    return llama.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)


def cached_prefix(llama, tokens: list[int]) -> int:
    """How many leading `tokens` the KV cache already holds."""
    held = llama.input_ids[: llama.n_tokens]
    n = min(len(held), len(tokens))
    if n == 0:
        return 0
    differs = np.flatnonzero(held[:n] != np.asarray(tokens[:n], dtype=held.dtype))
    return int(differs[0]) if differs.size else n


def evaluate(llama, tokens: list[int]) -> tuple[int, int]:
    """Bring the KV cache to exactly `tokens`, evaluating only what it does not hold; (reused, evaluated).

    At least the last token is evaluated, so the logits read afterwards belong to this prompt.
    """
    reused = min(cached_prefix(llama, tokens), len(tokens) - 1)
    llama.n_tokens = reused
    llama._requires_eval = True  # llama-cpp-python's own prefix check must not trust stale logits
    llama.eval(tokens[reused:])
    return reused, len(tokens) - reused


def _last_logits(llama) -> np.ndarray:
    return np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)).copy()


def _restricted_logprobs(logits: np.ndarray, allowed: list[int]) -> dict[int, float]:
    values = np.array([logits[t] for t in allowed], dtype=np.float64)
    values -= values.max()
    log_total = math.log(float(np.exp(values).sum()))
    return {t: float(v) - log_total for t, v in zip(allowed, values)}


def choice_logprobs(llama, tokens: list[int], choices: list[str]) -> tuple[dict[str, float], int, int]:
    """(log probability of each choice, tokens reused, tokens evaluated) after the prompt `tokens`.

    The probabilities sum to 1 over `choices`. The KV cache is left holding the prompt, so the next
    prompt that shares its beginning reuses it.
    """
    reused, evaluated = evaluate(llama, tokens)
    n_prompt = len(tokens)
    eos = llama.token_eos()
    sequences = {c: llama.tokenize(c.encode("utf-8"), add_bos=False, special=False) + [_END] for c in choices}
    logprob = {c: 0.0 for c in choices}
    root = _last_logits(llama)

    def walk(prefix: list[int], members: list[str], logits: Any) -> None:
        nonlocal evaluated
        depth = len(prefix)
        branches: dict[int, list[str]] = {}
        for c in members:
            branches.setdefault(sequences[c][depth], []).append(c)
        if len(branches) > 1:
            if logits is None:  # the shared tokens so far were forced: evaluate them once, here
                llama.n_tokens = n_prompt
                llama.eval(prefix)
                evaluated += len(prefix)
                logits = _last_logits(llama)
            scores = _restricted_logprobs(logits, [eos if t == _END else t for t in branches])
            for token, group in branches.items():
                for c in group:
                    logprob[c] += scores[eos if token == _END else token]
        for token, group in branches.items():
            if token != _END and len(group) > 1:
                walk(prefix + [token], group, None)

    walk([], list(choices), root)
    llama.n_tokens = n_prompt
    llama._requires_eval = True
    return logprob, reused, evaluated
