"""What the local fake servers share: a ThreadingHTTPServer on a free 127.0.0.1 port, served from a daemon
thread, started and stopped directly or as a context manager."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a subprocess that must be told its port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """Mixin: the class gives `_handler()` (the request handler class) and a `_thread_name`, and holds
    `_server` / `_thread` attributes (None until started)."""

    _server: ThreadingHTTPServer | None
    _thread: threading.Thread | None
    _thread_name = "fake-server"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=self._thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
