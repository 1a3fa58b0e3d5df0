"""The agent messaging experience over real signed HTTP: the Messages tab's first-open greeting and prompts, a DM
question's status and loading messages then its streamed answer in its thread, and app_context_changed scoping
the next DM answers to a channel only when Slack says the user is in it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import bot.answering
from bot.listeners.agent import GREETING, LOADING_MESSAGES, STATUS, SUGGESTED_PROMPTS
from harness.slack_api import FakeSlack
from harness.slack_signing import event_envelope, message
from lore.config import Settings
from tests.bot.conftest import RunningBot, ScriptedAnswerer, settle

DM = "D0LOREDM"


def messages_tab_opened(user: str, channel: str = DM) -> dict[str, Any]:
    """app_home_opened as Slack sends it when the Messages tab is opened (docs.slack.dev, app_home_opened)."""
    return {"type": "app_home_opened", "user": user, "channel": channel, "tab": "messages", "event_ts": "1600007000.1"}


def send_context_changed(running: RunningBot, user: str, channel: str | None) -> None:
    """app_context_changed in the shape of Slack's reference page: the viewer is the envelope's user
    authorization; the entities name what they look at (none: an empty context)."""
    entities = [{"type": "slack#/types/channel_id", "value": channel, "team_id": "T0TEAM"}] if channel else []
    envelope = event_envelope({"type": "app_context_changed", "context": {"entities": entities} if entities else {}})
    envelope["authorizations"] = [{"team_id": "T0TEAM", "user_id": user, "is_bot": False}]
    response = running.sender.post_raw(json.dumps(envelope).encode(), "application/json")
    assert response.status_code == 200


def test_messages_tab_greets_once_per_user_with_prompts(bot: RunningBot, fake_slack: FakeSlack) -> None:
    bot.sender.event(messages_tab_opened("U0ASKER"))
    greeting = fake_slack.wait_for("chat.postMessage")[0]
    assert greeting["channel"] == DM and greeting["text"] == GREETING and "thread_ts" not in greeting
    prompts = fake_slack.wait_for("assistant.threads.setSuggestedPrompts")[0]
    greeting_ts = fake_slack.history[DM][0]["ts"]
    assert prompts["channel_id"] == DM and prompts["thread_ts"] == greeting_ts
    assert prompts["prompts"] == SUGGESTED_PROMPTS
    # Opening the tab again (a new delivery) greets no more; another user is greeted once too.
    bot.sender.event(messages_tab_opened("U0ASKER"))
    bot.sender.event(messages_tab_opened("U0OTHER", channel="D0OTHER"))
    fake_slack.wait_for("chat.postMessage", 2)
    settle()
    assert [c["channel"] for c in fake_slack.calls_to("chat.postMessage")] == [DM, "D0OTHER"]
    assert fake_slack.calls_to("views.publish") == []  # the Messages tab is not the Home tab


def test_dm_question_gets_status_then_streamed_answer_in_its_thread(
    start_bot: Callable[..., RunningBot],
    bot_settings: Settings,
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bot.answering, "UPDATE_INTERVAL_S", 0.0)
    settings = bot_settings.model_copy(update={"slack_streaming": True})
    answerer = ScriptedAnswerer(settings)
    running = start_bot(settings, answerer)
    running.sender.event(message("how do we deploy?", channel=DM, ts="1600007100.000100", channel_type="im"))
    fake_slack.wait_for("chat.stopStream")
    status = fake_slack.calls_to("assistant.threads.setStatus")[0]
    assert status["channel_id"] == DM and status["thread_ts"] == "1600007100.000100"
    assert status["status"] == STATUS and status["loading_messages"] == LOADING_MESSAGES
    start = fake_slack.calls_to("chat.startStream")[0]
    assert start["channel"] == DM and start["thread_ts"] == "1600007100.000100"
    methods = fake_slack.methods()
    assert methods.index("assistant.threads.setStatus") < methods.index("chat.startStream")
    assert fake_slack.calls_to("chat.postMessage") == []


def test_context_of_a_channel_the_user_is_in_scopes_the_next_dm_answers(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    fake_slack.memberships["U0ASKER"] = ["C0GENERAL"]
    fake_slack.channel_members["G0PROJECT"] = ["U0OTHER", "U0ASKER"]
    send_context_changed(bot, "U0ASKER", "G0PROJECT")
    fake_slack.wait_for("conversations.members")
    settle()
    bot.sender.event(message("what is the plan?", channel=DM, ts="1600007200.000100", channel_type="im"))
    fake_slack.wait_for("chat.postMessage")
    asker = answerer.calls[0]["asker"]
    assert asker.is_dm and list(asker.member_channels) == ["G0PROJECT", "C0GENERAL"]
    assert "G0PROJECT" in asker.visible_acl()
    # Someone else's DM is not scoped by this user's context.
    bot.sender.event(message("and mine?", channel="D0OTHER", ts="1600007200.000200", user="U0OTHER", channel_type="im"))
    fake_slack.wait_for("chat.postMessage", 2)
    assert "G0PROJECT" not in answerer.calls[1]["asker"].member_channels
    # An empty context (the user looks at nothing in particular) ends the scope.
    send_context_changed(bot, "U0ASKER", None)
    settle()
    bot.sender.event(message("and now?", channel=DM, ts="1600007200.000300", channel_type="im"))
    fake_slack.wait_for("chat.postMessage", 3)
    assert list(answerer.calls[2]["asker"].member_channels) == ["C0GENERAL"]


def test_context_of_a_channel_the_user_is_not_in_scopes_nothing(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    fake_slack.memberships["U0ASKER"] = ["C0GENERAL"]
    fake_slack.channel_members["G0SECRET"] = ["U0OTHER"]
    send_context_changed(bot, "U0ASKER", "G0SECRET")
    fake_slack.wait_for("conversations.members")
    # A channel Slack does not know (or will not show the bot) counts as not a member either.
    send_context_changed(bot, "U0ASKER", "C0UNKNOWN")
    fake_slack.wait_for("conversations.members", 2)
    settle()
    bot.sender.event(message("what is the secret plan?", channel=DM, ts="1600007300.000100", channel_type="im"))
    fake_slack.wait_for("chat.postMessage")
    asker = answerer.calls[0]["asker"]
    assert list(asker.member_channels) == ["C0GENERAL"]
    assert "G0SECRET" not in asker.visible_acl() and "C0UNKNOWN" not in asker.visible_acl()
