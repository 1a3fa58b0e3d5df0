"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for tests (`/v1/chat/completions`, `/v1/models`,
`/v1/embeddings`).

Embeddings are real ones: the offline all-MiniLM-L6-v2 (384-d), padded with zeros to the model's own size
(`embedding_dims`, default 384) and, when the request names `dimensions`, cut to that size as OpenAI's
text-embedding-3 models do. So a knowledge base built through this server searches like the local one.

Replies come from a queue (`reply(...)`) or from a function of the request (`responder`); every request is
recorded. Failures are injectable: HTTP errors (`fail`), slow replies (`delay`) and broken streams
(`malformed_stream`). Used as a context manager or through the `fake_openai` pytest fixture:

    with FakeOpenAI() as fake:
        fake.reply("Paris [1]")
        settings.model_copy(update={"openai_base_url": fake.url, "chat_model": "fake-model"})
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from harness.local_server import LocalServer


@dataclass
class Reply:
    """One scripted completion: text and/or tool calls ({"name", "arguments": dict, "id"?})."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 11
    completion_tokens: int = 7


@dataclass
class _Fault:
    kind: str  # "status", "delay", "malformed"
    status: int = 500
    seconds: float = 0.0
    times: int = 1


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]  # names in lower case

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))


Responder = Callable[[dict[str, Any]], "Reply | str"]


class FakeOpenAI(LocalServer):
    """An OpenAI-compatible server whose replies each test scripts."""

    def __init__(self, *, model: str = "fake-model", default: str | None = "I don't know.") -> None:
        self.model = model
        self.default = default
        self.requests: list[RecordedRequest] = []
        self.responder: Responder | None = None
        self._queue: deque[Reply] = deque()
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._thread_name = "fake-openai"
        self.embedding_dims: dict[str, int] = {}  # model -> the size of its vectors (default 384)
        # Streaming pace: seconds between streamed words (a model that writes as people see it), and the wall-clock
        # time (time.time()) each streamed completion's first word was sent at, for latency measurements.
        self.word_interval = 0.0
        self.first_word_sent: list[float] = []

    # -- scripting ---------------------------------------------------------------------------------

    def reply(self, *replies: Reply | str) -> None:
        """Queue replies, served in order; then the responder, then the default."""
        with self._lock:
            for item in replies:
                self._queue.append(item if isinstance(item, Reply) else Reply(content=item))

    def fail(self, status: int = 500, *, times: int = 1) -> None:
        """The next `times` completion requests answer with HTTP `status`."""
        with self._lock:
            self._faults.append(_Fault("status", status=status, times=times))

    def delay(self, seconds: float, *, times: int = 1) -> None:
        """The next `times` completion requests wait `seconds` before answering (timeouts)."""
        with self._lock:
            self._faults.append(_Fault("delay", seconds=seconds, times=times))

    def malformed_stream(self, *, times: int = 1) -> None:
        """The next `times` streamed completions send invalid JSON in an SSE event."""
        with self._lock:
            self._faults.append(_Fault("malformed", times=times))

    @property
    def completions(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/embeddings")]

    @property
    def url(self) -> str:
        """The base URL clients use (OPENAI_BASE_URL), ending in /v1."""
        assert self._server is not None, "FakeOpenAI is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    # -- lifecycle ---------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(_Handler):
            owner = fake

        return Handler

    # -- used by the handler -----------------------------------------------------------------------

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.times -= 1
            if fault.times <= 0:
                self._faults.popleft()
            return fault

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.responder is not None:
            produced = self.responder(body)
            return produced if isinstance(produced, Reply) else Reply(content=produced)
        if self.default is None:
            raise AssertionError("FakeOpenAI got a request with no scripted reply")
        return Reply(content=self.default)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _send_json(self, status: int, document: dict[str, Any]) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self.owner.requests.append(RecordedRequest("GET", self.path, {}, _headers(self)))
        if self.path.rstrip("/").endswith("/models"):
            model = {"id": self.owner.model, "object": "model", "created": 0, "owned_by": "fake"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"message": "request body is not JSON", "type": "invalid_request"}})
            return
        self.owner.requests.append(RecordedRequest("POST", self.path, body, _headers(self)))
        if self.path.rstrip("/").endswith("/embeddings"):
            self._embeddings(body)
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        fault = self.owner._next_fault()
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "status":
            self._send_json(fault.status, {"error": {"message": "injected failure", "type": "server_error"}})
            return
        reply = self.owner._next_reply(body)
        if body.get("stream"):
            self._stream(body, reply, malformed=fault is not None and fault.kind == "malformed")
        else:
            self._send_json(200, _completion(body, reply, self.owner.model))

    def _embeddings(self, body: dict[str, Any]) -> None:
        from lore.config import Settings
        from lore.embeddings import get_embedder

        texts = [body["input"]] if isinstance(body.get("input"), str) else list(body.get("input") or [])
        model = str(body.get("model", ""))
        size = self.owner.embedding_dims.get(model, 384)
        wanted = int(body.get("dimensions") or size)
        if wanted > size:
            message = f"{model} makes {size}-d vectors; dimensions={wanted} is too many"
            self._send_json(400, {"error": {"message": message, "type": "invalid_request_error"}})
            return
        vectors = np.zeros((len(texts), size), dtype=np.float32)
        local = Settings(_env_file=None).model_copy(update={"embeddings": "local"})  # type: ignore[call-arg]
        vectors[:, :384] = get_embedder(local).embed(texts)[:, : min(size, 384)]
        vectors = vectors[:, :wanted]
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        usage = {
            "prompt_tokens": sum(len(t.split()) for t in texts),
            "total_tokens": sum(len(t.split()) for t in texts),
        }
        self._send_json(200, {"object": "list", "data": data, "model": model, "usage": usage})

    def _stream(self, body: dict[str, Any], reply: Reply, *, malformed: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        first = True
        for chunk in _stream_chunks(body, reply, self.owner.model):
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                if first:
                    self.owner.first_word_sent.append(time.time())
                    first = False
                if self.owner.word_interval:
                    time.sleep(self.owner.word_interval)
            if malformed:
                self.wfile.write(b"data: {this is not json\n\n")
                self.wfile.flush()
                break
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def _headers(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    """Request headers with lower-case names (HTTP header names are case-insensitive)."""
    return {name.lower(): value for name, value in handler.headers.items()}


def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": call.get("id", f"call_{i}"),
            "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call.get("arguments", {}))},
        }
        for i, call in enumerate(reply.tool_calls)
    ]


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _completion(body: dict[str, Any], reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
    if reply.tool_calls:
        message["tool_calls"] = _tool_calls(reply)
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", model),
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
        "usage": _usage(reply),
    }


def _stream_chunks(body: dict[str, Any], reply: Reply, model: str) -> Iterator[dict[str, Any]]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time())}
    base["model"] = body.get("model", model)
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    words = reply.content.split(" ") if reply.content else []
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        yield {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
    for i, call in enumerate(_tool_calls(reply)):
        delta = {"tool_calls": [{"index": i, **call}]}
        yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    finish = "tool_calls" if reply.tool_calls else "stop"
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": _usage(reply)}
