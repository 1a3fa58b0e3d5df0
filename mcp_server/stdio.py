"""MCP over stdio, for `lore mcp`: one client (a desktop app, an IDE, an agent) that started this process.

The caller is fixed for the process: `--user U` (trusted like any local `lore` command, which already holds the
database's credentials) or `--token T`, which is checked again on every request, so revoking it takes effect
at once; without either, the caller sees public documents only and cannot vote.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server

from lore.config import Settings
from lore.logs import kv
from lore.tokens import authenticate
from mcp_server.server import CallerResolver, create_server
from mcp_server.tools import Caller

log = logging.getLogger(__name__)


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send whatever is written to file descriptor 1 (libraries, child processes) to stderr meanwhile: on stdio,
    stdout carries the protocol and one stray line breaks the client."""
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def resolver(settings: Settings, *, user_id: str | None, token: str | None) -> CallerResolver:
    """Who calls, for every request of this process. Raises TokenError now for a token that does not authenticate."""
    if token is not None:
        authenticate(settings, token)

        def by_token(ctx: ServerRequestContext[Any, Any]) -> Caller:
            info = authenticate(settings, token)
            return Caller(user_id=info.user_id, token=info)

        return by_token
    caller = Caller(user_id=user_id or "")
    return lambda ctx: caller


def _warm_up(settings: Settings) -> None:
    """Load the embedder before the first search needs it (seconds of model loading)."""
    try:
        from lore.search import embed_query

        embed_query(settings, "warm up")
    except Exception as exc:  # the first real call reports the problem to the client
        log.warning(kv("mcp_warm_up_failed", error=type(exc).__name__))


def run_stdio(settings: Settings, *, resolve_caller: CallerResolver) -> None:
    """Serve MCP on stdin/stdout until the client closes them."""
    server = create_server(settings, resolve_caller=resolve_caller)

    async def serve() -> None:
        async with stdio_server() as (read_stream, write_stream):
            # Started once the transport owns stdout (and sends stray writes to stderr).
            threading.Thread(target=_warm_up, args=(settings,), name="lore-warm-up", daemon=True).start()
            await server.run(read_stream, write_stream, server.create_initialization_options())

    log.info(kv("serving", mode="mcp-stdio"))
    anyio.run(serve)
