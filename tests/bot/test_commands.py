"""Slash commands as Slack sends them (form-encoded, signed): /ask in the channel, /lore search|add|stats|help."""

from __future__ import annotations

import time

from harness.kb import add_document
from harness.polling import wait_until
from harness.slack_api import FakeSlack
from lore.config import Settings
from lore.db import raw_connection
from tests.bot.conftest import RunningBot, ScriptedAnswerer, final_message


def test_ask_is_acked_at_once_and_answered_in_the_channel(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    answerer.delay_s = 1.0
    started = time.monotonic()
    response = bot.sender.command("/ask", "how do we deploy?")
    assert response.status_code == 200 and time.monotonic() - started < 0.5
    parent = fake_slack.wait_for("chat.postMessage")[0]
    assert parent["channel"] == "C0GENERAL" and "thread_ts" not in parent
    assert parent["text"] == "<@U0ASKER> asked: how do we deploy?"
    parent_ts = fake_slack.history["C0GENERAL"][0]["ts"]
    answer = fake_slack.wait_for("chat.postMessage", 2)[1]
    assert answer["channel"] == "C0GENERAL" and answer["thread_ts"] == parent_ts
    wait_until(lambda: final_message(fake_slack, "C0GENERAL", parent_ts)["blocks"][-1]["type"] == "actions")
    assert answerer.calls[0]["question"] == "how do we deploy?"


def test_ask_outside_the_bots_channels_answers_through_the_response_url(bot: RunningBot, fake_slack: FakeSlack) -> None:
    fake_slack.fail("chat.postMessage", status=200, error="not_in_channel")
    bot.sender.command("/ask", "how do we deploy?", response_url=bot.response_url)
    reply = fake_slack.wait_for("respond")[0]
    assert reply["response_type"] == "in_channel" and "make deploy" in reply["text"]
    assert reply["blocks"][-1]["type"] == "actions"


def test_ask_without_a_question_gets_usage(bot: RunningBot) -> None:
    response = bot.sender.command("/ask", "   ")
    assert response.status_code == 200 and "Usage" in response.text


def test_lore_help_and_unknown_subcommands_get_usage(bot: RunningBot) -> None:
    help_text = bot.sender.command("/lore", "help").text
    unknown = bot.sender.command("/lore", "frobnicate now").text
    empty = bot.sender.command("/lore", "").text
    assert "/lore search" in help_text and "/lore add" in help_text
    assert "Unknown command `frobnicate`" in unknown and "/lore search" in unknown
    assert "/lore stats" in empty


def test_lore_add_queues_an_ingest_with_the_channels_acl(bot: RunningBot, fake_slack: FakeSlack) -> None:
    response = bot.sender.command(
        "/lore", "add <https://handbook.example.com/oncall|handbook>", response_url=bot.response_url
    )
    assert response.status_code == 200
    reply = fake_slack.wait_for("respond")[0]
    assert "Queued https://handbook.example.com/oncall" in reply["text"]

    def job() -> tuple[list[str], list[str]] | None:
        with raw_connection(bot.settings) as conn:
            row = conn.execute("SELECT sources, acl FROM ingest_jobs").fetchone()
        return (row[0], row[1]) if row else None

    assert wait_until(job) == (["https://handbook.example.com/oncall"], ["C0GENERAL"])
    # Only web pages: a path on the bot's own machine is refused, and nothing is queued.
    refused = bot.sender.command("/lore", "add /etc/passwd")
    assert "one http(s) URL" in refused.text


def test_lore_stats_and_search(bot: RunningBot, fake_slack: FakeSlack, bot_settings: Settings) -> None:
    add_document(
        bot_settings,
        uri="https://handbook.example.com/oncall",
        title="On-call",
        sections=[("On-call", "The on-call engineer carries the pager for one week and hands over on Monday.")],
    )
    bot.sender.command("/lore", "stats", response_url=bot.response_url)
    stats = fake_slack.wait_for("respond")[0]["text"]
    assert "1 documents" in stats and "0 answers" in stats
    bot.sender.command("/lore", "search who carries the pager", response_url=bot.response_url)
    results = fake_slack.wait_for("respond", 2, timeout=30)[1]["text"]
    assert "<https://handbook.example.com/oncall|On-call>" in results and "pager" in results
