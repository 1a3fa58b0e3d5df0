"""Run the bot: HTTP (Bolt's Starlette adapter behind uvicorn, plus /healthz and /metrics) or Socket Mode."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt import App, BoltRequest
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Lifespan

from bot.metrics import EVENTS, REGISTRY, record_error
from lore.config import Settings
from lore.db import database_url
from lore.logs import kv

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000  # Slack's payloads are far smaller; anything bigger is not from Slack.
# Slack sends events as JSON and commands/interactivity as forms; Bolt would parse any other type by guessing.
SLACK_CONTENT_TYPES = frozenset({"application/json", "application/x-www-form-urlencoded"})


# Events dispatched after their ack at once; more waiting than this means the bot cannot keep up, and Slack
# (which retries an event it got no 200 for) is better served by a 503 than by an ack the bot cannot honour.
MAX_PENDING_EVENTS = 10_000


def is_event_callback(payload: Any) -> bool:
    """Whether a parsed body is a well-formed Events API `event_callback` (anything else takes Bolt's path)."""
    if not isinstance(payload, dict) or payload.get("type") != "event_callback":
        return False
    event = payload.get("event")
    return isinstance(event, dict) and isinstance(event.get("type"), str)


class EventDispatcher:
    """Runs Bolt's dispatch of already-acknowledged events on a few background threads.

    Slack needs its HTTP 200 within 3 s and nothing else from an event: the front verifies the signature and
    answers at once, and Bolt (middleware, listener matching, de-duplication) runs here, off the ack path.
    """

    def __init__(self, app: App, *, threads: int = 4) -> None:
        self.app = app
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lore-dispatch")
        self._pending = 0
        self._lock = threading.Lock()

    def try_submit(self, request: BoltRequest) -> bool:
        with self._lock:
            if self._pending >= MAX_PENDING_EVENTS:
                return False
            self._pending += 1
        self._executor.submit(self._dispatch, request)
        return True

    def _dispatch(self, request: BoltRequest) -> None:
        try:
            response = self.app.dispatch(request)
            if response.status >= 400:
                log.warning(kv("event_dispatch_refused", status=response.status, body=response.body[:200]))
        except Exception as exc:
            record_error("dispatch")
            log.exception(kv("event_dispatch_failed", error=type(exc).__name__))
        finally:
            with self._lock:
                self._pending -= 1

    def pending(self) -> int:
        with self._lock:
            return self._pending


def database_ok(settings: Settings) -> bool:
    try:
        with psycopg.connect(database_url(settings), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception as exc:
        log.warning(kv("healthz_database_down", error=type(exc).__name__))
        return False


def create_http_app(
    settings: Settings,
    *,
    bolt_app: App | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    lifespan: Lifespan[Starlette] | None = None,
) -> Starlette:
    """POST /slack/events (events, commands, interactivity), GET /healthz, GET /metrics, and the routes of
    other surfaces the composition root adds (`extra_routes`, e.g. /mcp) with the lifespan they need."""
    if bolt_app is None:
        from bot.app import create_app

        bolt_app = create_app(settings)
    routes: list[BaseRoute] = [
        Route("/slack/events", SlackEndpoint(settings, bolt_app).handle, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *extra_routes,
    ]
    http_app = Starlette(routes=routes, lifespan=lifespan)
    http_app.state.settings = settings
    return http_app


class SlackEndpoint:
    """Slack's single endpoint: checks what Bolt would choke on, acknowledges events at once (Bolt runs after the
    ack, on the EventDispatcher), and hands commands and interactivity to Bolt, whose ack is the response."""

    def __init__(self, settings: Settings, bolt_app: App) -> None:
        self.app = bolt_app
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
        self.verifier = SignatureVerifier(secret) if secret else None
        self.dispatcher = EventDispatcher(bolt_app)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        content_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        refusal = refuse(body, content_type, request.headers.get("x-slack-request-timestamp") or "")
        if refusal is not None:
            return refusal
        try:
            bolt_request = to_bolt_request(request, body)
        except Exception as exc:
            return rejected(400, "malformed request", reason="malformed", error=type(exc).__name__)
        if self.verifier is not None and content_type == "application/json" and is_event_callback(bolt_request.body):
            # The fast path for events: signature checked here, 200 at once, Bolt after the ack.
            if not self.verifier.is_valid_request(body, dict(request.headers)):
                return rejected(401, "invalid request", reason="invalid signature")
            if not self.dispatcher.try_submit(bolt_request):
                record_error("overloaded")
                log.warning(kv("slack_request_deferred", reason="overloaded", pending=self.dispatcher.pending()))
                return PlainTextResponse("overloaded, retry later", status_code=503)
            return Response(status_code=200)
        try:
            # Bolt's dispatch is synchronous (signature check, parse, ack): off the event loop, so one slow
            # request never holds up the others.
            bolt_response = await run_in_threadpool(self.app.dispatch, bolt_request)
        except Exception as exc:
            record_error("dispatch")
            log.warning(kv("slack_request_rejected", reason="dispatch failed", error=f"{type(exc).__name__}: {exc}"))
            return PlainTextResponse("malformed request", status_code=400)
        return to_starlette_response(bolt_response)


def refuse(body: bytes, content_type: str, timestamp: str) -> Response | None:
    """The response to a request that is not from Slack by its size, type or timestamp header; None otherwise."""
    if len(body) > MAX_BODY_BYTES:
        return rejected(413, "payload too large", reason="too large", bytes=len(body))
    if content_type not in SLACK_CONTENT_TYPES:
        return rejected(415, "unsupported content type", reason="content type", content_type=content_type[:60])
    if not (timestamp.isascii() and timestamp.isdigit()):
        # Bolt's check would raise on a non-numeric timestamp and answer 500; this is simply unsigned.
        return rejected(401, "invalid request timestamp", reason="bad timestamp header")
    return None


def rejected(status: int, text: str, **fields: Any) -> Response:
    EVENTS.labels("rejected").inc()
    log.warning(kv("slack_request_rejected", **fields))
    return PlainTextResponse(text, status_code=status)


async def healthz(request: Request) -> Response:
    ok = await run_in_threadpool(database_ok, request.app.state.settings)
    return JSONResponse({"ok": ok, "database": "up" if ok else "down"}, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def run_http(
    settings: Settings,
    *,
    host: str,
    port: int,
    bolt_app: App | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    lifespan: Lifespan[Starlette] | None = None,
) -> None:
    import uvicorn

    http_app = create_http_app(settings, bolt_app=bolt_app, extra_routes=extra_routes, lifespan=lifespan)
    log.info(kv("serving", mode="http", host=host, port=port))
    uvicorn.run(
        http_app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        # Longer than the idle timeout of the proxies in front (60 s on most load balancers): otherwise the
        # server closes a keep-alive connection just as a request arrives on it, and that request fails.
        timeout_keep_alive=75,
    )


def socket_handler(settings: Settings, *, bolt_app: App | None = None) -> Any:
    """The Socket Mode handler for the app (connects when `.connect()` or `.start()` is called)."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    settings.require_socket()
    assert settings.slack_app_token is not None
    if bolt_app is None:
        from bot.app import create_app

        bolt_app = create_app(settings)
    return SocketModeHandler(bolt_app, app_token=settings.slack_app_token.get_secret_value())


def run_socket(settings: Settings, *, bolt_app: App | None = None) -> None:
    handler = socket_handler(settings, bolt_app=bolt_app)
    log.info(kv("serving", mode="socket"))
    handler.start()
