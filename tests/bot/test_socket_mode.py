"""Socket Mode: the same app connects over a WebSocket (apps.connections.open), acks envelopes and answers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from bot.app import create_app
from bot.server import socket_handler
from harness.polling import wait_until
from harness.slack_api import BOT_USER_ID, FakeSlack
from harness.slack_signing import app_mention, event_envelope
from lore.config import ConfigError, Settings
from tests.bot.conftest import ScriptedAnswerer


class SocketSlack(FakeSlack):
    """The fake Web API plus Slack's Socket Mode endpoint: a local WebSocket that pushes envelopes."""

    ws_url: str = ""
    acks: list[dict[str, Any]]
    outbox: list[dict[str, Any]]

    def _respond(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        if method == "apps.connections.open":
            return {"ok": True, "url": self.ws_url}
        return super()._respond(method, p)


@pytest.fixture
def socket_slack() -> Iterator[SocketSlack]:
    fake = SocketSlack()
    fake.acks, fake.outbox = [], []

    def session(conn: ServerConnection) -> None:
        conn.send(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {"host": "local"}}))
        for envelope in fake.outbox:
            conn.send(json.dumps(envelope))
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


def test_socket_mode_connects_acks_and_answers(bot_settings: Settings, socket_slack: SocketSlack) -> None:
    settings = bot_settings.model_copy(
        update={
            "slack_api_url": socket_slack.url,
            "slack_app_token": SecretStr("xapp-1-test"),
            "slack_signing_secret": None,
        }
    )
    answerer = ScriptedAnswerer(settings)
    envelope = event_envelope(app_mention(f"<@{BOT_USER_ID}> over the socket?", ts="1600006000.000100"))
    socket_slack.outbox.append(
        {"envelope_id": "env-1", "type": "events_api", "accepts_response_payload": False, "payload": envelope}
    )
    handler = socket_handler(settings, bolt_app=create_app(settings, answerer=answerer))
    try:
        handler.connect()
        wait_until(lambda: {"envelope_id": "env-1"} in socket_slack.acks)
        posted = socket_slack.wait_for("chat.postMessage")[0]
        assert posted["thread_ts"] == "1600006000.000100"
        opened = [c for c in socket_slack.calls if c.method == "apps.connections.open"]
        assert opened and opened[0].authorization == "Bearer xapp-1-test"  # the app-level token, not the bot's
    finally:
        handler.close()


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
