"""Build the Bolt app: the Web API client (base URL from settings), the state the listeners share, the listeners."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltResponse

from bot.listeners import actions, agent, assistant, commands, events, home, shortcuts
from bot.metrics import record_error
from bot.pool import AnswerProcesses
from bot.slack_client import create_client
from bot.state import Answerer, BotState, ProvideState
from bot.worker_client import WorkerClient
from lore.config import ConfigError, Settings
from lore.logs import kv

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, answerer: Answerer | None = None) -> App:
    """The one Bolt app that both `lore serve --http` and `--socket` run.

    Listeners run on Bolt's thread pool after the ack (process_before_response=False): Slack gets its
    HTTP 200 before retrieval or generation starts. With the default answerer and LORE_BOT_PROCESSES > 0,
    answers run in separate processes (bot/pool.py), so answering never slows the acks down.
    """
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
    app.use(ProvideState(create_state(settings, answerer)))
    for listeners in (assistant, agent, events, commands, actions, shortcuts, home):
        listeners.register(app)
    app.event(re.compile(".*"))(ignore_other_events)
    app.error(on_error)
    return app


def create_state(settings: Settings, answerer: Answerer | None) -> BotState:
    """What the listeners share; answers run in answer processes unless a stand-in answerer is given."""
    if answerer is not None:
        return BotState(settings=settings, answerer=answerer, workers=WorkerClient(settings))
    from lore.agent import answer_question

    state = BotState(settings=settings, answerer=answer_question, workers=WorkerClient(settings))
    if settings.bot_processes > 0:
        state.pool = AnswerProcesses(settings, processes=settings.bot_processes, threads=settings.bot_threads)
    return state


def ignore_other_events() -> None:
    """Events Lore does not use (joins, pins...) are acknowledged, so Slack does not retry them."""


def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse | None:
    record_error("listener")
    kind = body.get("type") if isinstance(body, dict) else None
    log.error(kv("listener_error", kind=kind, error=f"{type(error).__name__}: {error}"), exc_info=error)
    return None
