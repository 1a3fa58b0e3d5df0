"""Answers stream with chat.startStream/appendStream/stopStream, fall back to post-then-update, and the real
agent (scripted LangChain model) answers through the bot with citations to the knowledge base."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

import bot.answering
from harness.kb import add_document
from harness.polling import wait_until
from harness.slack_api import BOT_USER_ID, TEAM_ID, FakeSlack
from harness.slack_signing import app_mention
from lore.config import Settings
from lore.db import raw_connection
from tests.bot.conftest import RunningBot, ScriptedAnswerer


def _chunk_text(call: dict[str, Any]) -> str:
    texts = [str(call.get("markdown_text") or "")]
    texts += [c.get("text", "") for c in call.get("chunks") or [] if c.get("type") == "markdown_text"]
    return "".join(texts)


def test_answer_streams_through_the_streaming_methods(
    start_bot: Callable[..., RunningBot],
    bot_settings: Settings,
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bot.answering, "STREAM_INTERVAL_S", 0.0)
    settings = bot_settings.model_copy(update={"slack_streaming": True})
    answerer = ScriptedAnswerer(settings)
    running = start_bot(settings, answerer)
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts="1600002000.000100"))
    stop = fake_slack.wait_for("chat.stopStream")[0]
    start = fake_slack.calls_to("chat.startStream")[0]
    assert start["thread_ts"] == "1600002000.000100" and start["channel"] == "C0GENERAL"
    assert start["recipient_user_id"] == "U0ASKER" and start["recipient_team_id"] == TEAM_ID
    streamed = _chunk_text(start) + "".join(_chunk_text(c) for c in fake_slack.calls_to("chat.appendStream"))
    streamed += _chunk_text(stop)
    assert streamed == answerer.reply("how do we deploy?")
    assert len(fake_slack.calls_to("chat.appendStream")) >= 3  # it really streamed, piece by piece
    kinds = [b["type"] for b in stop["blocks"]]
    assert kinds == ["context", "context_actions", "actions"]
    assert fake_slack.calls_to("chat.postMessage") == []


def test_streaming_refused_falls_back_to_post_then_throttled_updates(
    start_bot: Callable[..., RunningBot], bot_settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = bot_settings.model_copy(update={"slack_streaming": True})
    long_reply = "Deploys go out with **make deploy** [1]. " + "Then watch the dashboards. " * 10
    answerer = ScriptedAnswerer(settings, reply=lambda q: long_reply, token_delay_s=0.06)  # about 2.6 s of tokens
    running = start_bot(settings, answerer)
    fake_slack.fail("chat.startStream", status=200, error="not_allowed_token_type")
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts="1600002100.000100"))
    post = fake_slack.wait_for("chat.postMessage")[0]
    assert post["thread_ts"] == "1600002100.000100"
    wait_until(lambda: any(b["type"] == "actions" for u in fake_slack.calls_to("chat.update") for b in u["blocks"]))
    updates = fake_slack.calls_to("chat.update")
    # One edit a second at most while tokens arrive, then the final one.
    assert 2 <= len(updates) <= 4, len(updates)
    final = updates[-1]
    assert "**make deploy**" in final["blocks"][0]["text"] and final["blocks"][-1]["type"] == "actions"
    assert len(fake_slack.calls_to("chat.startStream")) == 1 and len(fake_slack.calls_to("chat.postMessage")) == 1


def test_the_real_agent_answers_with_citations_from_the_knowledge_base(
    start_bot: Callable[..., RunningBot], bot_settings: Settings, fake_slack: FakeSlack
) -> None:
    from lore.agent import answer_question

    add_document(
        bot_settings,
        uri="https://handbook.example.com/deploy",
        title="Deploying",
        sections=[("Deploying", "Production deploys run with `make deploy` from the main branch after review.")],
    )
    model = GenericFakeChatModel(messages=iter([AIMessage(content="Run `make deploy` from main [1].")]))
    running = start_bot(bot_settings, partial(answer_question, chat_model=model))
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> how do I deploy to production?", ts="1600002200.000100"))
    post = fake_slack.wait_for("chat.postMessage", timeout=30)[0]
    blocks = post["blocks"]
    assert "make deploy" in blocks[0]["text"]
    citations = next(b for b in blocks if b["type"] == "context")
    assert "https://handbook.example.com/deploy" in citations["elements"][0]["text"]
    answer_id = int(next(b for b in blocks if b["type"] == "actions")["elements"][0]["value"])

    def attached() -> bool:
        with raw_connection(bot_settings) as conn:
            row = conn.execute(
                "SELECT channel_id, thread_ts, message_ts, surface, user_id FROM answers WHERE id = %s", (answer_id,)
            ).fetchone()
        return bool(
            row
            and row[0] == "C0GENERAL"
            and row[1] == "1600002200.000100"
            and row[2]
            and row[3] == "slack"
            and row[4] == "U0ASKER"
        )

    wait_until(attached)
