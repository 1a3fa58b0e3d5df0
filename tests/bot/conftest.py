"""Fixtures for the Slack bot: settings pointed at the fake Slack, a scripted answerer, the bot on real HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr

from bot.app import create_app
from bot.server import create_http_app
from harness.polling import wait_until
from harness.slack_api import FakeSlack
from harness.slack_signing import SlackSender
from lore.config import Settings
from lore.db import raw_connection
from lore.types import Answer, Asker, Citation, Turn
from tests.fakes.fixtures import fake_openai  # noqa: F401 - a fixture for the answer-process tests

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CITATION = Citation(number=1, uri="https://docs.example.com/deploy", title="Deploy guide")


@dataclass
class ScriptedAnswerer:
    """Stands in for lore.agent.answer_question: streams a scripted reply, records an answers row like it."""

    settings: Settings
    reply: Callable[[str], str] = lambda question: f"Deploys go out with **make deploy** [1]. ({question})"
    fail_with: Exception | None = None
    delay_s: float = 0.0
    token_delay_s: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self,
        settings: Settings,
        question: str,
        *,
        asker: Asker | None = None,
        history: Sequence[Turn] = (),
        on_token: Callable[[str], None] | None = None,
        generation: dict[str, Any] | None = None,
        parent_id: int | None = None,
        **_: Any,
    ) -> Answer:
        self.calls.append(
            {
                "question": question,
                "asker": asker,
                "history": list(history),
                "generation": generation,
                "parent_id": parent_id,
            }
        )
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_with is not None:
            raise self.fail_with
        text = self.reply(question)
        if on_token is not None:
            for start in range(0, len(text), 7):
                on_token(text[start : start + 7])
                if self.token_delay_s:
                    time.sleep(self.token_delay_s)
        with raw_connection(settings) as conn:
            row = conn.execute(
                "INSERT INTO answers (question, answer, model, surface, channel_id, user_id, team_id, thread_ts, "
                "private, generation, parent_id) VALUES (%s, %s, 'scripted', 'slack', %s, %s, %s, %s, %s, "
                "%s::jsonb, %s) RETURNING id",
                (
                    question,
                    text,
                    asker.channel_id if asker else None,
                    asker.user_id if asker else None,
                    asker.team_id if asker else None,
                    asker.thread_ts if asker else None,
                    bool(asker and asker.private),
                    json.dumps(generation or {}),
                    parent_id,
                ),
            ).fetchone()
        assert row is not None
        return Answer(answer_id=int(row[0]), text=text, citations=[CITATION], model="scripted")


@pytest.fixture
def bot_settings(db: Settings, fake_slack: FakeSlack) -> Settings:
    return db.model_copy(
        update={
            "slack_api_url": fake_slack.url,
            "slack_bot_token": SecretStr("xoxb-test-token"),
            "slack_signing_secret": SecretStr(SECRET),
            "slack_streaming": False,
            "bot_threads": 4,
        }
    )


@pytest.fixture
def answerer(bot_settings: Settings) -> ScriptedAnswerer:
    return ScriptedAnswerer(bot_settings)


@dataclass
class RunningBot:
    url: str
    sender: SlackSender
    settings: Settings
    fake: FakeSlack

    @property
    def response_url(self) -> str:
        return self.fake.url + "respond"


class _Server:
    """uvicorn serving an ASGI app on an ephemeral port in a thread (real HTTP, as in production)."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=10, what="uvicorn", interval=0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def start_bot(fake_slack: FakeSlack) -> Iterator[Callable[..., RunningBot]]:
    """Start the bot (create_app + create_http_app) behind uvicorn; returns a RunningBot with a signed sender."""
    stack: list[tuple[_Server, SlackSender]] = []

    def start(settings: Settings, answerer: Callable[..., Answer]) -> RunningBot:
        bolt = create_app(settings, answerer=answerer)
        server = _Server(create_http_app(settings, bolt_app=bolt)).__enter__()
        sender = SlackSender(f"http://127.0.0.1:{server.port}", SECRET)
        stack.append((server, sender))
        return RunningBot(url=f"http://127.0.0.1:{server.port}", sender=sender, settings=settings, fake=fake_slack)

    yield start
    for server, sender in stack:
        sender.close()
        server.__exit__()


@pytest.fixture
def bot(start_bot: Callable[..., RunningBot], bot_settings: Settings, answerer: ScriptedAnswerer) -> RunningBot:
    return start_bot(bot_settings, answerer)


def settle(seconds: float = 0.4) -> None:
    """Let the bot's worker threads finish anything a duplicate might have started."""
    time.sleep(seconds)


def final_message(fake: FakeSlack, channel: str, thread_ts: str) -> dict[str, Any]:
    """The last state of the bot's first message in a thread: the latest chat.update of it, else its post."""
    posted = thread_posts(fake, thread_ts)[0]
    ts = next(m["ts"] for m in fake.replies[(channel, thread_ts)] if m.get("bot_id"))
    updates = [c for c in fake.calls_to("chat.update") if c.get("ts") == ts]
    return {**posted, **updates[-1], "ts": ts} if updates else {**posted, "ts": ts}


def thread_posts(fake: FakeSlack, thread_ts: str) -> list[dict[str, Any]]:
    """Answer messages the bot started in a thread (posted or streamed)."""
    return [
        c
        for c in fake.calls_to("chat.postMessage") + fake.calls_to("chat.startStream")
        if c.get("thread_ts") == thread_ts
    ]
