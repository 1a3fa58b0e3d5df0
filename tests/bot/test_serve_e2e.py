"""End to end: `lore serve --http` as a real process (search-only: no LLM configured), real signed requests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.kb import add_document
from harness.local_server import free_port
from harness.polling import wait_until
from harness.slack_api import BOT_USER_ID, FakeSlack
from harness.slack_signing import SlackSender, app_mention, message
from lore.config import Settings
from lore.db import raw_connection
from tests.bot.conftest import SECRET, settle, thread_posts


@pytest.fixture
def served(db: Settings, fake_slack: FakeSlack) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_"))}
    env.update(
        {
            "SLACK_API_URL": fake_slack.url,
            "SLACK_BOT_TOKEN": "xoxb-e2e",
            "SLACK_SIGNING_SECRET": SECRET,
            "LORE_HOST": "127.0.0.1",
            "LORE_PORT": str(port),
            "LORE_BOT_PROCESSES": "1",  # answers in a separate process, as in production (one: a light test)
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "lore.cli", "serve", "--http"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, process.stdout.read() if process.stdout else "lore serve exited"
        return httpx.get(url + "/healthz", timeout=1).status_code == 200

    wait_until(up, timeout=60, what="lore serve --http", interval=0.2)
    yield url
    process.terminate()
    try:
        output = process.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
    assert "xoxb-e2e" not in output and SECRET not in output  # no secret in the logs


def answer_in(fake: FakeSlack, thread_ts: str) -> tuple[str, list[dict[str, Any]]] | None:
    """(text, blocks) of the finished answer in a thread, whether it was streamed or posted."""
    for start in fake.calls_to("chat.startStream"):
        if start.get("thread_ts") == thread_ts:
            stops = fake.calls_to("chat.stopStream")
            if not stops:
                return None
            pieces = [start, *fake.calls_to("chat.appendStream"), stops[0]]
            text = "".join(c.get("text", "") for p in pieces for c in p.get("chunks") or [])
            return text, stops[0]["blocks"]
    for post in fake.calls_to("chat.postMessage"):
        if post.get("thread_ts") == thread_ts and post["blocks"][-1]["type"] == "actions":
            return str(post["blocks"]), post["blocks"]
    return None


def test_lore_serve_http_answers_from_the_knowledge_base(served: str, db: Settings, fake_slack: FakeSlack) -> None:
    add_document(
        db,
        uri="https://handbook.example.com/freeze",
        title="Deploy freeze",
        sections=[("Deploy freeze", "The deploy freeze runs from December 20 to January 3; hotfixes need a VP.")],
    )
    sender = SlackSender(served, SECRET)
    root = "1600007000.000100"
    mention = app_mention(f"<@{BOT_USER_ID}> when is the deploy freeze?", ts=root)
    assert sender.event(mention, event_id="EvE2E000001").status_code == 200
    assert sender.event(mention, event_id="EvE2E000001", retry_num=1).status_code == 200
    assert sender.event(message(mention["text"], ts=root), event_id="EvE2E000002").status_code == 200
    # Streamed (chat.startStream … stopStream) by default; the final call carries citations and buttons.
    text, blocks = wait_until(lambda: answer_in(fake_slack, root), timeout=90)
    citations = next(b for b in blocks if b["type"] == "context")
    assert "<https://handbook.example.com/freeze|[1] Deploy freeze>" in citations["elements"][0]["text"]
    assert "December 20" in text
    answer_id = int(blocks[-1]["elements"][0]["value"])

    def linked() -> bool:
        with raw_connection(db) as conn:
            row = conn.execute(
                "SELECT channel_id, thread_ts, message_ts FROM answers WHERE id = %s", (answer_id,)
            ).fetchone()
        return bool(row and row[0] == "C0GENERAL" and row[1] == root and row[2])

    wait_until(linked)
    settle()
    assert len(thread_posts(fake_slack, root)) == 1
    # Signatures are checked by the real server too.
    assert sender.post_raw(b"{}", "application/json", secret="wrong").status_code == 401
    metrics = httpx.get(served + "/metrics").text
    assert 'lore_answers_total{outcome="ok",surface="slack"} 1.0' in metrics
    sender.close()
