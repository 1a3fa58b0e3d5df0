"""Only a person's own question is answered: Slackbot's notices in Lore's DM, other bots, joins, edits, deletions
and the like get no answer (signed payloads in the shapes a real workspace sends, over real HTTP)."""

from __future__ import annotations

from typing import Any

from harness.slack_api import BOT_USER_ID, TEAM_ID, FakeSlack
from harness.slack_signing import app_mention, message
from tests.bot.conftest import RunningBot, ScriptedAnswerer, settle

DM = "D0LOREDM"


def _slackbot_notice(ts: str, *, thread_ts: str | None = None) -> dict[str, Any]:
    """Captured from a real workspace (ids replaced): Slackbot tells the bot it was removed from a channel."""
    event: dict[str, Any] = {
        "user": "USLACKBOT",
        "type": "message",
        "ts": ts,
        "text": "You have been removed from #testing by <@U0ADMIN>",
        "team": TEAM_ID,
        "blocks": [
            {
                "type": "rich_text",
                "block_id": "Jd9",
                "elements": [
                    {
                        "type": "rich_text_section",
                        "elements": [
                            {"type": "text", "text": "You have been removed from #testing by "},
                            {"type": "user", "user_id": "U0ADMIN"},
                        ],
                    }
                ],
            }
        ],
        "channel": DM,
        "event_ts": ts,
        "channel_type": "im",
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def _not_questions() -> list[dict[str, Any]]:
    return [
        _slackbot_notice("1600009000.000100"),
        # In an assistant/agent thread of the DM (Bolt's Assistant would see it as a user message).
        _slackbot_notice("1600009000.000300", thread_ts="1600009000.000200"),
        message(
            "<@U0NEW> has joined the channel",
            channel=DM,
            ts="1600009000.000400",
            user="U0NEW",
            channel_type="im",
            subtype="channel_join",
        ),
        message(
            "hello from a workflow",
            channel=DM,
            ts="1600009000.000500",
            channel_type="im",
            subtype="bot_message",
            bot_id="B0WORKFLOW",
            user=None,
        ),
        message(
            "an app posting as a user",
            channel=DM,
            ts="1600009000.000600",
            channel_type="im",
            bot_profile={"id": "B0APP", "name": "someapp"},
        ),
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": DM,
            "channel_type": "im",
            "hidden": True,
            "ts": "1600009000.000700",
            "event_ts": "1600009000.000700",
            "message": {"type": "message", "user": "U0ASKER", "text": "what is new?", "ts": "1600009000.000050"},
            "previous_message": {"type": "message", "user": "U0ASKER", "text": "what is ne", "ts": "1600009000.000050"},
        },
        {
            "type": "message",
            "subtype": "message_deleted",
            "channel": DM,
            "channel_type": "im",
            "hidden": True,
            "deleted_ts": "1600009000.000060",
            "ts": "1600009000.000800",
            "event_ts": "1600009000.000800",
            "previous_message": {"type": "message", "user": "U0ASKER", "text": "a question", "ts": "1600009000.000060"},
        },
        # No user at all (a system message), and Slackbot in a channel thread mentioning Lore.
        {
            k: v
            for k, v in message("system notice", channel=DM, ts="1600009000.000900", channel_type="im").items()
            if k != "user"
        },
        app_mention(f"<@{BOT_USER_ID}> reminder: standup", ts="1600009001.000100", user="USLACKBOT"),
        app_mention(f"<@{BOT_USER_ID}> from an app", ts="1600009001.000200", user="U0APPUSER") | {"bot_id": "B0X"},
    ]


def test_only_a_persons_question_is_answered(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    for event in _not_questions():
        assert bot.sender.event(event).status_code == 200
    # A real question after them is answered: the bot was up and listening all along.
    bot.sender.event(message("how do we deploy?", channel=DM, ts="1600009002.000100", channel_type="im"))
    posted = fake_slack.wait_for("chat.postMessage")
    settle(0.8)
    posts = fake_slack.calls_to("chat.postMessage")
    assert len(posts) == 1, [p.get("thread_ts") for p in posts]
    assert posted[0]["thread_ts"] == "1600009002.000100"
    assert [c["question"] for c in answerer.calls] == ["how do we deploy?"]
    assert fake_slack.calls_to("chat.startStream") == []
    # Nothing else even showed a "searching…" status.
    assert [c["thread_ts"] for c in fake_slack.calls_to("assistant.threads.setStatus")] == ["1600009002.000100"]
