"""Fixtures for the Slack bot: settings pointed at the fake Slack, the real answerer with a scripted model, the bot
on real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import SecretStr

from bot.app import create_app
from bot.server import create_http_app
from harness.kb import add_document
from harness.polling import wait_until
from harness.slack_api import FakeSlack
from harness.slack_signing import SlackSender
from lore.agent import answer_question
from lore.config import Settings
from lore.db import raw_connection
from lore.embeddings import get_embedder
from lore.types import Answer, Asker, Turn
from tests.agent.conftest import ScriptedChat
from tests.fakes.fixtures import fake_openai  # noqa: F401 - a fixture for the answer-process tests

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
# What the scripted replies cite as [1]: the one document of the knowledge base of most bot tests.
GUIDE_URI, GUIDE_TITLE = "https://docs.example.com/deploy", "Deploy guide"
GUIDE_TEXT = "Deploys go out with make deploy from the main branch, after review and CI."


class ScriptedModel(ScriptedChat):
    """The scripted chat model, made slow (`delay_s` before replying, `token_delay_s` between streamed words)
    or failing (`fail_with`) as a real model server can be."""

    delay_s: float = 0.0
    token_delay_s: float = 0.0
    fail_with: Exception | None = None

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        time.sleep(self.delay_s)
        if self.fail_with is not None:
            raise self.fail_with
        return super()._generate(messages, *args, **kwargs)

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for chunk in super()._stream(messages, *args, **kwargs):
            yield chunk
            time.sleep(self.token_delay_s)


@dataclass
class ScriptedAnswerer:
    """lore.agent.answer_question with a scripted chat model: retrieval, the prompt, streaming, citations and the
    answers row are Lore's own; only the model's reply is scripted (`reply(question)`). Every call is recorded, and
    each call's model (`models`) keeps the messages it was sent (`seen`)."""

    settings: Settings
    reply: Callable[[str], str] = lambda question: f"Deploys go out with **make deploy** [1]. ({question})"
    fail_with: Exception | None = None
    delay_s: float = 0.0
    token_delay_s: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    models: list[ScriptedModel] = field(default_factory=list)

    _seeding: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _seed(self, settings: Settings) -> None:
        """The guide goes into the knowledge base with the first question (tests that ask none count documents)."""
        with self._seeding, raw_connection(settings) as conn:
            present = conn.execute("SELECT 1 FROM documents WHERE uri = %s", (GUIDE_URI,)).fetchone()
            if present is None:
                add_document(settings, uri=GUIDE_URI, title=GUIDE_TITLE, sections=[(GUIDE_TITLE, GUIDE_TEXT)])

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
        **extra: Any,
    ) -> Answer:
        self.calls.append(
            {
                "question": question,
                "asker": asker,
                "history": list(history),
                "generation": generation,
                "parent_id": parent_id,
                "extra_sources": list(extra.get("extra_sources") or ()),
                "images": list(extra.get("images") or ()),
            }
        )
        self._seed(settings)
        model = ScriptedModel(
            messages=iter([self.reply(question)]),
            delay_s=self.delay_s,
            token_delay_s=self.token_delay_s,
            fail_with=self.fail_with,
        )
        self.models.append(model)
        return answer_question(
            settings,
            question,
            asker=asker,
            history=history,
            on_token=on_token,
            generation=generation,
            parent_id=parent_id,
            chat_model=model,
            **extra,
        )


@pytest.fixture
def bot_settings(db: Settings, fake_slack: FakeSlack) -> Settings:
    # Answers embed the question: the embedder is loaded (on a fresh LORE_HOME, built) before any timed test, as
    # the answer processes of `lore serve` warm it up before taking questions.
    get_embedder(db).embed(["warm-up"])
    return db.model_copy(
        update={
            "slack_api_url": fake_slack.url,
            "slack_bot_token": SecretStr("xoxb-test-token"),
            "slack_signing_secret": SecretStr(SECRET),
            "slack_streaming": False,
            "bot_threads": 4,
            # Every passage counts (cosine similarity is never below -1), so every question reaches the scripted
            # model: how relevant a passage must be is the agent's concern, tested in tests/agent.
            "min_similarity": -1.0,
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
