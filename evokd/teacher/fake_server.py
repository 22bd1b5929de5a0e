"""TEST DOUBLE: an OpenAI-compatible chat-completions server on 127.0.0.1 that injects faults.

For fault-injection tests and the load benchmark only, never for real data. The answers come
from `ScriptedEngine` (real dataset sentences and their gold labels) as a pure function of the
request body, so an interrupted-and-resumed run sees the same answers as an uninterrupted one.
Faults are drawn per (request body, how often that body was sent), so a retry of a failed
request can succeed, as with a real provider:

  rate_limit   429 with a Retry-After header        server_error  500
  timeout      the answer comes after `hang_s`      malformed     200 with a body that is not JSON
  truncated    200 whose body stops half-way        slow          the answer comes after `slow_s`

It is a real HTTP server (http.server, one thread per request): the client under test is the
real `dspy.LM` / LiteLLM / OpenAI SDK stack.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from evokd.teacher.scripted import ScriptedEngine, is_plain_question

FAULTS = ("rate_limit", "server_error", "timeout", "malformed", "truncated", "slow")
_OUTPUT_FIELDS = re.compile(r"Your output fields are:\n((?:\d+\. `\w+`.*\n?)+)")
_FIELD = re.compile(r"^\d+\. `(\w+)`", re.MULTILINE)


class FakeOpenAIServer:
    """TEST DOUBLE; see the module docstring. Use as a context manager; `url` is the API base."""

    def __init__(self, pool: list[dict], labels: list[str], *, faults: dict[str, float] | None = None, seed: int = 0,
                 latency_s: float = 0.0, hang_s: float = 5.0, slow_s: float = 0.3, retry_after: str = "0",
                 label_noise: float = 0.0, require_key: str | None = None):
        unknown = set(faults or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; expected some of {FAULTS}")
        self.engine = ScriptedEngine(pool, labels, seed=seed, label_noise=label_noise)
        self.faults = dict(faults or {})
        self.seed = seed
        self.latency_s, self.hang_s, self.slow_s, self.retry_after = latency_s, hang_s, slow_s, retry_after
        self.lock = threading.Lock()
        self.sent: Counter = Counter()  # body hash -> requests received
        self.answered: Counter = Counter()  # body hash -> successful answers sent
        self.log: list[tuple[float, str, str]] = []  # (time, body hash, outcome)
        self.auth_headers: set[str] = set()
        self.require_key = require_key  # when set, any other key gets a 401 that echoes it (as some providers do)
        self._server: ThreadingHTTPServer | None = None

    # lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> "FakeOpenAIServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                owner._handle(self)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a killed client is expected here
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-openai").start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    # answering --------------------------------------------------------------------------------
    def _fault(self, digest: str, nth: int) -> str | None:
        rng = random.Random(f"{self.seed}|{digest}|{nth}")
        u, acc = rng.random(), 0.0
        for name in FAULTS:
            acc += self.faults.get(name, 0.0)
            if u < acc:
                return name
        return None

    def content_for(self, body: dict) -> str:
        messages = body.get("messages") or []
        prompt = "\n".join(str(m.get("content") or "") for m in messages)
        fields: set[str] = set()
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
        fields |= set(schema.get("properties", {}))
        match = _OUTPUT_FIELDS.search(prompt)
        if not fields and match:
            fields = set(_FIELD.findall(match.group(1)))
        plain = bool(messages) and is_plain_question(str(messages[-1].get("content") or ""))
        with self.lock:
            rng = self.engine.rng_for(prompt, vary_on_repeat=False)
            answer = self.engine.answer({"label"} if plain else fields, prompt, rng)
        if plain and isinstance(answer, dict):
            return answer["label"]  # the plain labeling question: a bare label name
        return answer if isinstance(answer, str) else json.dumps(answer)

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        raw = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        digest = hashlib.sha256(raw).hexdigest()[:16]
        with self.lock:
            self.sent[digest] += 1
            nth = self.sent[digest]
            if req.headers.get("Authorization"):
                self.auth_headers.add(req.headers["Authorization"])
        given = (req.headers.get("Authorization") or "").removeprefix("Bearer ")
        if self.require_key is not None and given != self.require_key:
            self._send(req, 401, {"error": {"message": f"Incorrect API key provided: {given}", "type": "invalid_request_error",
                                            "code": "invalid_api_key"}})
            with self.lock:
                self.log.append((time.time(), digest, "unauthorized"))
            return
        fault = self._fault(digest, nth)
        if self.latency_s:
            time.sleep(self.latency_s)
        outcome = fault or "ok"
        try:
            if fault == "rate_limit":
                self._send(req, 429, {"error": {"message": "Rate limit reached (fake)", "type": "rate_limit_error"}},
                           headers={"Retry-After": self.retry_after})
            elif fault == "server_error":
                self._send(req, 500, {"error": {"message": "internal error (fake)", "type": "server_error"}})
            elif fault == "malformed":
                self._send_raw(req, 200, b"{this is not json", "application/json")
            elif fault == "truncated":
                body = json.dumps(self._completion(json.loads(raw or b"{}"))).encode()
                req.send_response(200)
                req.send_header("Content-Type", "application/json")
                req.send_header("Content-Length", str(len(body)))
                req.end_headers()
                req.wfile.write(body[: len(body) // 2])
                req.wfile.flush()
                req.close_connection = True
            else:
                if fault == "timeout":
                    time.sleep(self.hang_s)
                elif fault == "slow":
                    time.sleep(self.slow_s)
                self._send(req, 200, self._completion(json.loads(raw or b"{}")))
                if fault is None or fault == "slow":
                    with self.lock:
                        self.answered[digest] += 1
        except (BrokenPipeError, ConnectionResetError):
            outcome += " (client gone)"
        with self.lock:
            self.log.append((time.time(), digest, outcome))

    def _completion(self, body: dict) -> dict:
        content = self.content_for(body)
        n_in = sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or [])
        n_out = len(content.split())
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
        }

    @staticmethod
    def _send(req, status: int, payload: dict, headers: dict | None = None) -> None:
        FakeOpenAIServer._send_raw(req, status, json.dumps(payload).encode(), "application/json", headers)

    @staticmethod
    def _send_raw(req, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        req.send_response(status)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(body)
