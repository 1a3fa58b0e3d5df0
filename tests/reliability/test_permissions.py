"""Documents of private channels never reach anyone outside them, on any surface: mentions in other channels,
DMs of non-members, /ask, /lore search, the assistant pane, and `lore search/ask --json --channel`.

The bot runs the real agent in search-only mode (no model configured): its answers quote the retrieved
passages, so a leak of a private document would show its canary in the text posted to Slack.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from harness.canary_kb import (
    CANARIES,
    OTHER_PRIVATE,
    PUBLIC_SECTIONS,
    QUESTION,
    QUESTION_TWO,
    SECRET_CHANNEL,
    build_canary_kb,
    leaked,
)
from harness.polling import wait_until
from harness.slack_api import BOT_USER_ID, FakeSlack
from harness.slack_signing import app_mention, message
from lore.agent import answer_question
from lore.cli import main
from lore.config import Settings
from tests.bot.conftest import RunningBot, settle


def _posted(fake: FakeSlack) -> str:
    """Everything the bot sent to Slack (every parameter of every call), as one string."""
    return json.dumps([(c.method, c.params) for c in fake.calls], default=str)


@pytest.fixture
def kb_bot(start_bot: Callable[..., RunningBot], bot_settings: Settings, fake_slack: FakeSlack) -> RunningBot:
    build_canary_kb(bot_settings, fake_slack, public_sections=PUBLIC_SECTIONS[:1])
    return start_bot(bot_settings, answer_question)


def _answers_posted(fake: FakeSlack, count: int) -> None:
    wait_until(lambda: len(fake.calls_to("chat.postMessage")) + len(fake.calls_to("respond")) >= count, timeout=60)


def _outsider_requests(bot: RunningBot) -> int:
    """Every surface, asked by someone outside the private channels; returns the number of replies expected."""
    sender = bot.sender
    for n, question in enumerate((QUESTION, QUESTION_TWO)):
        sender.event(app_mention(f"<@{BOT_USER_ID}> {question}", ts=f"1670000000.00010{n}"))
        sender.event(
            message(question, channel="D0OUTSIDER", user="U0OUTSIDER", ts=f"1670000001.00010{n}", channel_type="im")
        )
        sender.command("/ask", question, user_id="U0OUTSIDER")  # posts the question, then the answer
        sender.command("/lore", f"search {question}", user_id="U0OUTSIDER", response_url=bot.response_url)
        sender.command("/lore", "search CANARY", user_id="U0OUTSIDER", response_url=bot.response_url)
    started = {
        "type": "assistant_thread_started",
        "assistant_thread": {"user_id": "U0OUTSIDER", "channel_id": "D0PANE", "thread_ts": "1670000002.000100",
                             "context": {"channel_id": SECRET_CHANNEL, "team_id": "T0TEAM"}},
        "event_ts": "1670000002.000200",
    }  # fmt: skip
    sender.event(started)
    sender.event(
        message(QUESTION, channel="D0PANE", user="U0OUTSIDER", ts="1670000002.000300",
                thread_ts="1670000002.000100", channel_type="im")
    )  # fmt: skip
    # A thread follow-up in another channel, quoting the private channel by name.
    sender.event(
        message(f"<@{BOT_USER_ID}> and in <#{SECRET_CHANNEL}>, what is the codename?", ts="1670000003.000200",
                thread_ts="1670000000.000100")
    )  # fmt: skip
    # 2 mentions + 2 DMs + 2 times (/ask parent + answer) + 4 searches + the pane + the follow-up
    return 2 + 2 + 4 + 4 + 1 + 1


def test_no_canary_reaches_anyone_outside_the_private_channels(kb_bot: RunningBot, fake_slack: FakeSlack) -> None:
    expected = _outsider_requests(kb_bot)
    _answers_posted(fake_slack, expected)
    settle(1.0)
    posted = _posted(fake_slack)
    assert leaked(posted) == []
    # They were answered (from the public page), not refused: the check above saw real answers.
    answers = [c["text"] for c in fake_slack.calls_to("chat.postMessage") if "Nightjar" in str(c.get("blocks"))]
    assert len(answers) >= 5 and "mobile app" in posted
    assert len(fake_slack.calls_to("respond")) == 4


def test_members_do_get_their_channels_documents_and_only_those(kb_bot: RunningBot, fake_slack: FakeSlack) -> None:
    secret_canary, other_canary = CANARIES[SECRET_CHANNEL][0], CANARIES[OTHER_PRIVATE][0]
    sender = kb_bot.sender
    sender.event(app_mention(f"<@{BOT_USER_ID}> {QUESTION}", channel=SECRET_CHANNEL, ts="1670000100.000100"))
    sender.event(message(QUESTION, channel="D0MEMBER", user="U0MEMBER", ts="1670000101.000100", channel_type="im"))
    sender.command("/lore", f"search {QUESTION}", channel_id=SECRET_CHANNEL, response_url=kb_bot.response_url)
    _answers_posted(fake_slack, 3)
    settle(0.5)
    in_channel, in_dm = (
        next(str(c["blocks"]) for c in fake_slack.calls_to("chat.postMessage") if c["channel"] == where)
        for where in (SECRET_CHANNEL, "D0MEMBER")
    )
    search = fake_slack.calls_to("respond")[0]["text"]
    for text in (in_channel, in_dm, search):
        assert secret_canary in text and other_canary not in text
    # The member's DM answer cites the private channel's document.
    assert f"slack://{SECRET_CHANNEL}/p1" in in_dm or f"{SECRET_CHANNEL} notes" in in_dm


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output[-2000:]
    return json.loads(result.stdout)


def test_cli_search_and_ask_show_a_channels_documents_only_with_that_channel(db: Settings) -> None:
    build_canary_kb(db, public_sections=PUBLIC_SECTIONS[:1])
    secret_canary, other_canary = CANARIES[SECRET_CHANNEL][0], CANARIES[OTHER_PRIVATE][0]
    outside = [
        _cli("search", QUESTION, "--json"),
        _cli("search", QUESTION, "--json", "--channel", "C0GENERAL"),
        _cli("search", "CANARY NIGHTJAR PAYROLL", "--json", "--channel", "C0GENERAL", "--mode", "fulltext"),
        _cli("ask", QUESTION, "--json"),
        _cli("ask", QUESTION_TWO, "--json", "--channel", "C0GENERAL"),
    ]
    assert leaked(json.dumps(outside)) == []
    assert "mobile app" in json.dumps(outside)
    inside = [_cli("search", QUESTION, "--json", "--channel", SECRET_CHANNEL),
              _cli("ask", QUESTION, "--json", "--channel", SECRET_CHANNEL)]  # fmt: skip
    text = json.dumps(inside)
    assert secret_canary in text and other_canary not in text
    assert any(c["uri"] == f"slack://{SECRET_CHANNEL}/p1" for c in inside[1]["citations"])
