"""A local web site for ingest tests and the soak: a function of the path gives each response, and every
request is recorded with its time (politeness and robots.txt are checked against them)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness.local_server import LocalServer


@dataclass(frozen=True)
class Response:
    status: int
    body: str = ""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class WebSite(LocalServer):
    """Serves `respond(path)` for every GET; `requests` lists (monotonic time, path) in arrival order."""

    _thread_name = "fake-web-site"

    def __init__(self, respond: Callable[[WebSite, str], Response]) -> None:
        self.respond = respond
        self.requests: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> WebSite:
        super().start()
        assert self._server is not None
        self._server.block_on_close = False  # a deliberately slow handler may still be sleeping at the end
        return self

    @property
    def port(self) -> int:
        assert self._server is not None, "the web site is not started"
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        with self.lock:
            return [p for _, p in self.requests]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with site.lock:
                    site.requests.append((time.monotonic(), self.path))
                response = site.respond(site, self.path)
                data = response.body.encode()
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
