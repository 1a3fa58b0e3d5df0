"""Socket Mode: the same app connects over a WebSocket (apps.connections.open), acks envelopes and answers; the
agent messaging features work over it as over HTTP (the Messages tab, feedback buttons, files in a DM thread,
/lore config)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pydantic import SecretStr
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from bot.app import create_app
from bot.listeners.actions import THANKS
from bot.listeners.agent import GREETING, SUGGESTED_PROMPTS
from bot.server import socket_handler
from harness.polling import wait_until
from harness.slack_api import BOT_USER_ID, FakeSlack
from harness.slack_signing import app_mention, event_envelope, message, slash_command
from lore.config import ConfigError, Settings
from tests.bot.conftest import ScriptedAnswerer
from tests.bot.test_agent_messaging import DM, messages_tab_opened
from tests.bot.test_channel_modes import ADMIN
from tests.bot.test_feedback_buttons import feedback_press
from tests.bot.test_thread_files import ROLLOUT, _finished_answer, slack_file
from tests.ingest.helpers import rows


class SocketSlack(FakeSlack):
    """The fake Web API plus Slack's Socket Mode endpoint: a local WebSocket that pushes envelopes, those of
    `outbox` on connecting and any later with `push`, and records the app's acks."""

    ws_url: str = ""
    acks: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    connection: ServerConnection | None = None

    def _respond(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        if method == "apps.connections.open":
            return {"ok": True, "url": self.ws_url}
        return super()._respond(method, p)

    def push(self, kind: str, payload: dict[str, Any]) -> str:
        """Send an envelope of `kind` (events_api, interactive, slash_commands) as Slack does; its envelope id."""
        envelope_id = f"env-{next(_envelopes)}"
        wait_until(lambda: self.connection is not None, what="the app's Socket Mode connection")
        assert self.connection is not None
        accepts_response = kind != "events_api"  # commands and interactions may answer in the ack
        envelope = {"envelope_id": envelope_id, "type": kind, "accepts_response_payload": accepts_response}
        self.connection.send(json.dumps({**envelope, "payload": payload}))
        return envelope_id

    def ack(self, envelope_id: str) -> dict[str, Any]:
        """The app's ack of that envelope (waited for)."""
        return wait_until(lambda: next((a for a in self.acks if a.get("envelope_id") == envelope_id), {}))


_envelopes = itertools.count(1)


@pytest.fixture
def socket_slack() -> Iterator[SocketSlack]:
    fake = SocketSlack()
    fake.acks, fake.outbox = [], []

    def session(conn: ServerConnection) -> None:
        conn.send(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {"host": "local"}}))
        for envelope in fake.outbox:
            conn.send(json.dumps(envelope))
        fake.connection = conn
        try:
            while True:
                fake.acks.append(json.loads(conn.recv()))
        except (ConnectionClosed, TimeoutError):
            return

    server: Server = serve(session, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.ws_url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}/link"
    with fake:
        yield fake
    server.shutdown()


def socket_settings(bot_settings: Settings, socket_slack: SocketSlack, **update: Any) -> Settings:
    """The bot's settings for Socket Mode against `socket_slack` (an app-level token, no signing secret)."""
    return bot_settings.model_copy(
        update={
            "slack_api_url": socket_slack.url,
            "slack_app_token": SecretStr("xapp-1-test"),
            "slack_signing_secret": None,
            **update,
        }
    )


@contextmanager
def connected(settings: Settings, answerer: ScriptedAnswerer) -> Iterator[Any]:
    """The real app (create_app) connected over Socket Mode for the duration of the block."""
    handler = socket_handler(settings, bolt_app=create_app(settings, answerer=answerer))
    try:
        handler.connect()
        yield handler
    finally:
        handler.close()


def test_socket_mode_connects_acks_and_answers(bot_settings: Settings, socket_slack: SocketSlack) -> None:
    settings = socket_settings(bot_settings, socket_slack)
    answerer = ScriptedAnswerer(settings)
    envelope = event_envelope(app_mention(f"<@{BOT_USER_ID}> over the socket?", ts="1600006000.000100"))
    socket_slack.outbox.append(
        {"envelope_id": "env-1", "type": "events_api", "accepts_response_payload": False, "payload": envelope}
    )
    with connected(settings, answerer):
        wait_until(lambda: {"envelope_id": "env-1"} in socket_slack.acks)
        posted = socket_slack.wait_for("chat.postMessage")[0]
        assert posted["thread_ts"] == "1600006000.000100"
        opened = [c for c in socket_slack.calls if c.method == "apps.connections.open"]
        assert opened and opened[0].authorization == "Bearer xapp-1-test"  # the app-level token, not the bot's


def test_socket_mode_needs_an_app_token(bot_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        socket_handler(bot_settings)


def _serve(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lore.cli", "serve", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_lore_serve_validates_configuration_and_tokens(fake_slack: FakeSlack, migrated: Settings) -> None:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    base["SLACK_API_URL"] = fake_slack.url
    missing = _serve(["--socket"], {**base, "SLACK_BOT_TOKEN": "xoxb-test"})
    assert missing.returncode == 2 and "SLACK_APP_TOKEN" in missing.stderr
    no_secret = _serve(["--http"], {**base, "SLACK_BOT_TOKEN": "xoxb-test"})
    assert no_secret.returncode == 2 and "SLACK_SIGNING_SECRET" in no_secret.stderr
    fake_slack.fail("auth.test", status=200, error="invalid_auth")
    rejected = _serve(["--http"], {**base, "SLACK_BOT_TOKEN": "xoxb-wrong", "SLACK_SIGNING_SECRET": "s"})
    assert rejected.returncode == 2 and "rejected the bot token" in rejected.stderr
    assert "xoxb-wrong" not in rejected.stderr + rejected.stdout


# -- the agent messaging features, over the socket -------------------------------------------------------------


def test_socket_mode_messages_tab_gets_suggested_prompts(bot_settings: Settings, socket_slack: SocketSlack) -> None:
    settings = socket_settings(bot_settings, socket_slack)
    with connected(settings, ScriptedAnswerer(settings)):
        sent = socket_slack.push("events_api", event_envelope(messages_tab_opened("U0ASKER")))
        assert socket_slack.ack(sent) == {"envelope_id": sent}
        prompts = socket_slack.wait_for("assistant.threads.setSuggestedPrompts")[0]
        greeting = socket_slack.calls_to("chat.postMessage")[0]
        assert greeting["channel"] == DM and greeting["text"] == GREETING
        assert prompts["channel_id"] == DM and prompts["prompts"] == SUGGESTED_PROMPTS
        assert prompts["thread_ts"] == socket_slack.history[DM][0]["ts"]


def test_socket_mode_feedback_button_press_records_a_vote(
    bot_settings: Settings, socket_slack: SocketSlack, celery_worker: object
) -> None:
    settings = socket_settings(bot_settings, socket_slack)
    root = "1600006100.000100"
    with connected(settings, ScriptedAnswerer(settings)):
        socket_slack.push("events_api", event_envelope(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts=root)))
        answer = wait_until(lambda: _finished_answer(socket_slack), timeout=30)
        buttons = next(b for b in answer["blocks"] if b["type"] == "context_actions")["elements"][0]
        answer_id = int(buttons["positive_button"]["value"].split(":")[1])
        ts = next(m["ts"] for m in socket_slack.replies[("C0GENERAL", root)] if m.get("bot_id"))
        wait_until(lambda: rows(settings, "SELECT message_ts FROM answers WHERE id = %s", answer_id) == [(ts,)])
        press = feedback_press(answer_id, ts, "up", user="U0VOTER", response_url=socket_slack.url + "respond")
        sent = socket_slack.push("interactive", press)
        assert socket_slack.ack(sent)["envelope_id"] == sent
        votes = "SELECT answer_id, user_id, value, via FROM votes"
        wait_until(lambda: rows(settings, votes) == [(answer_id, "U0VOTER", 1, "button")])
        assert socket_slack.wait_for("respond")[0]["text"] == THANKS


def test_socket_mode_a_file_shared_in_a_dm_thread_is_a_source(
    bot_settings: Settings, socket_slack: SocketSlack
) -> None:
    settings = socket_settings(bot_settings, socket_slack)
    answerer = ScriptedAnswerer(settings)
    plan = slack_file(socket_slack, "F0ROLL", "rollout.md", filetype="markdown", mimetype="text/markdown")
    url = plan["url_private_download"]
    socket_slack.files[url[url.index("/files-pri/") :]] = ROLLOUT
    root = f"{time.time() - 60:.6f}"
    shared = {"type": "message", "user": "U0ASKER", "ts": root, "text": "here is the plan", "files": [plan]}
    socket_slack.replies[(DM, root)].append(shared)
    question = message("when is the rollout window?", channel=DM, ts=f"{time.time():.6f}", thread_ts=root)
    with connected(settings, answerer):
        socket_slack.push("events_api", event_envelope(question | {"channel_type": "im"}))
        wait_until(lambda: len(answerer.calls) == 1, timeout=30)
        sources = answerer.calls[0]["extra_sources"]
        assert {s.hit.title for s in sources} == {"rollout.md"} and "Tuesday 14:00" in sources[0].hit.text
        wait_until(lambda: _finished_answer(socket_slack), timeout=30)
    downloads = socket_slack.calls_to("files.download")
    assert [d["path"].rsplit("/", 1)[1] for d in downloads] == ["rollout.md"]


def test_socket_mode_lore_config_opens_the_modal_for_an_admin(
    bot_settings: Settings, socket_slack: SocketSlack
) -> None:
    settings = socket_settings(bot_settings, socket_slack, admin_users=ADMIN)
    with connected(settings, ScriptedAnswerer(settings)):
        refused = socket_slack.push("slash_commands", slash_command("/lore", "config", user_id="U0ASKER"))
        assert "Only Lore's admins" in json.dumps(socket_slack.ack(refused).get("payload"))
        sent = socket_slack.push("slash_commands", slash_command("/lore", "config", user_id=ADMIN))
        assert socket_slack.ack(sent)["envelope_id"] == sent
        view = socket_slack.wait_for("views.open")[0]
        assert view["trigger_id"] == "1.2.abc"
        assert view["view"]["callback_id"] == "lore_config" and view["view"]["private_metadata"] == "C0GENERAL"
    assert len(socket_slack.calls_to("views.open")) == 1  # the non-admin's command opened nothing
