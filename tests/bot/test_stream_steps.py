"""Answers that show their work: the stream opens with a plan (searching), marks the search done when the model
starts writing, ends with the passages read; a stream Slack stops taking mid-answer is finished in the same message
with chat.update (never half an answer, never a second message)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import bot.answering
from bot import steps
from harness.polling import wait_until
from harness.slack_api import BOT_USER_ID, FakeSlack
from harness.slack_signing import app_mention
from lore.config import Settings
from tests.bot.conftest import RunningBot, ScriptedAnswerer, settle

LONG_REPLY = "Deploys go out with **make deploy** [1]. " + " ".join(f"Then check dashboard {i}." for i in range(12))


def _tasks(call: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["id"], c["status"]) for c in call.get("chunks") or [] if c.get("type") == "task_update"]


def _markdown(call: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in call.get("chunks") or [] if c.get("type") == "markdown_text")


@pytest.fixture
def streaming_bot(
    start_bot: Callable[..., RunningBot], bot_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[RunningBot, ScriptedAnswerer]]:
    monkeypatch.setattr(bot.answering, "STREAM_INTERVAL_S", 0.0)

    def start(**answerer_options: Any) -> tuple[RunningBot, ScriptedAnswerer]:
        settings = bot_settings.model_copy(update={"slack_streaming": True})
        answerer = ScriptedAnswerer(settings, **answerer_options)
        return start_bot(settings, answerer), answerer

    return start


def test_the_stream_shows_searching_then_writing_then_the_passages_read(
    streaming_bot: Callable[..., tuple[RunningBot, ScriptedAnswerer]], fake_slack: FakeSlack
) -> None:
    running, answerer = streaming_bot()
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts="1600008000.000100"))
    stop = fake_slack.wait_for("chat.stopStream")[0]
    start = fake_slack.calls_to("chat.startStream")[0]
    appends = fake_slack.calls_to("chat.appendStream")
    # The plan is up before any word of the answer, in plan display mode.
    assert start["task_display_mode"] == "plan" and _markdown(start) == ""
    assert any(c["type"] == "plan_update" for c in start["chunks"])
    assert _tasks(start) == [(steps.SEARCH, "in_progress")]
    # The first words come with the search marked done and the writing begun.
    assert _tasks(appends[0]) == [(steps.SEARCH, "complete"), (steps.WRITE, "in_progress")]
    assert _markdown(appends[0]) and _tasks(stop) == [(steps.SEARCH, "complete"), (steps.WRITE, "complete")]
    search_done = next(c for c in stop["chunks"] if c.get("id") == steps.SEARCH)
    assert search_done["output"] == "1 passage read, 1 cited"  # the knowledge base holds one passage
    streamed = "".join(_markdown(c) for c in [start, *appends, stop])
    assert streamed == answerer.reply("how do we deploy?")
    assert fake_slack.calls_to("chat.postMessage") == [] and fake_slack.calls_to("chat.update") == []


@pytest.mark.parametrize("error", ["message_not_in_streaming_state", "internal_error"])
def test_a_stream_refused_mid_answer_is_finished_in_the_same_message(
    streaming_bot: Callable[..., tuple[RunningBot, ScriptedAnswerer]], fake_slack: FakeSlack, error: str
) -> None:
    running, _ = streaming_bot(reply=lambda q: LONG_REPLY, token_delay_s=0.03)
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts="1600008100.000100"))
    fake_slack.wait_for("chat.appendStream", 2)  # the answer is under way...
    fake_slack.fail("chat.appendStream", status=200, error=error, times=10_000)  # ...when Slack stops taking it
    wait_until(lambda: fake_slack.calls_to("chat.update"), timeout=20)
    settle()
    stream_ts = fake_slack.replies[("C0GENERAL", "1600008100.000100")][0]["ts"]
    updates = fake_slack.calls_to("chat.update")
    assert len(updates) == 1 and updates[0]["ts"] == stream_ts  # the same message, once
    final = updates[0]
    assert "Then check dashboard 0. Then check dashboard 1." in final["text"]
    assert final["text"].rstrip().endswith("Then check dashboard 11.")  # the whole answer, to its last word
    assert any(b["type"] in ("context_actions", "actions") for b in final["blocks"])  # the feedback buttons too
    assert fake_slack.calls_to("chat.postMessage") == [] and len(fake_slack.calls_to("chat.startStream")) == 1
    fake_slack.fail("chat.appendStream", status=200, error=error, times=0)


def test_a_stream_that_cannot_be_stopped_is_finished_with_chat_update(
    streaming_bot: Callable[..., tuple[RunningBot, ScriptedAnswerer]], fake_slack: FakeSlack
) -> None:
    running, _ = streaming_bot()
    fake_slack.fail("chat.stopStream", status=200, error="message_not_in_streaming_state")
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts="1600008200.000100"))
    update = fake_slack.wait_for("chat.update")[0]
    assert update["ts"] == fake_slack.replies[("C0GENERAL", "1600008200.000100")][0]["ts"]
    assert "make deploy" in update["text"]
    settle()
    assert fake_slack.calls_to("chat.postMessage") == [] and len(fake_slack.calls_to("chat.update")) == 1
