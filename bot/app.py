"""Build the Bolt app: the Web API client (base URL from settings), the thread pool for slow work, the listeners."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.listeners import actions, assistant, commands, events, home, shortcuts
from bot.metrics import record_error
from bot.state import BotState
from lore.config import ConfigError, Settings
from lore.logs import kv
from lore.types import Answer

log = logging.getLogger(__name__)


def create_client(settings: Settings) -> WebClient:
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is required to run the Slack bot")
    client = WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url, timeout=15)
    # Slack answers 429 with Retry-After under load: wait and retry rather than drop an answer.
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


def create_app(settings: Settings, *, answerer: Callable[..., Answer] | None = None) -> App:
    """The one Bolt app that both `lore serve --http` and `--socket` run.

    Listeners run on Bolt's thread pool after the ack (process_before_response=False): Slack gets its
    HTTP 200 before retrieval or generation starts. With the default answerer and LORE_BOT_PROCESSES > 0,
    answers run in separate processes (bot/pool.py), so answering never slows the acks down.
    """
    default_answerer = answerer is None
    if answerer is None:
        from lore.agent import answer_question

        answerer = answer_question
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    if secret is None and settings.slack_app_token is None:
        raise ConfigError("SLACK_SIGNING_SECRET (HTTP) or SLACK_APP_TOKEN (Socket Mode) is required")
    app = App(
        client=create_client(settings),
        # Socket Mode deliveries are not signed; Bolt still wants a value there.
        signing_secret=secret or "socket-mode-unused",
        process_before_response=False,
        listener_executor=ThreadPoolExecutor(max_workers=settings.bot_threads, thread_name_prefix="lore-bot"),
        logger=logging.getLogger("slack_bolt.lore"),
        # Bolt also reads the process environment on its own; Lore's settings are the only source here.
        token_verification_enabled=True,
        request_verification_enabled=secret is not None,
        # Bolt would drop the deletion of Lore's own answers as a "self event"; the listeners skip bot posts.
        ignoring_self_events_enabled=False,
    )
    state = BotState(settings=settings, answerer=answerer)
    if default_answerer and settings.bot_processes > 0:
        from bot.pool import AnswerProcesses

        state.pool = AnswerProcesses(settings, processes=settings.bot_processes, threads=settings.bot_threads)
    assistant.register(app, state)
    events.register(app, state)
    commands.register(app, state)
    actions.register(app, state)
    shortcuts.register(app, state)
    home.register(app, state)

    @app.event(re.compile(".*"))
    def ignore_other_events() -> None:
        """Events Lore does not use (joins, pins...) are acknowledged, so Slack does not retry them."""

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse | None:
        record_error("listener")
        kind = body.get("type") if isinstance(body, dict) else None
        log.error(kv("listener_error", kind=kind, error=f"{type(error).__name__}: {error}"), exc_info=error)
        return None

    return app
