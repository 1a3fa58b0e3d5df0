"""The other surfaces: message shortcuts, live indexing (to Celery), App Home, and the assistant pane."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery.signals import before_task_publish

from bot.listeners.agent import LOADING_MESSAGES, STATUS
from harness.polling import wait_until
from harness.slack_api import FakeSlack
from harness.slack_signing import message, message_shortcut
from lore.config import Settings
from lore.db import raw_connection
from tests.bot.conftest import RunningBot, ScriptedAnswerer, settle


@pytest.fixture
def published() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Celery tasks the bot really publishes to the broker: (task name, kwargs)."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def record(sender: str | None = None, body: Any = None, **_: Any) -> None:
        sent.append((str(sender), dict(body[1])))

    before_task_publish.connect(record, weak=False)
    yield sent
    before_task_publish.disconnect(record)


def test_save_to_lore_queues_the_thread_with_the_channel_acl(
    bot: RunningBot, fake_slack: FakeSlack, published: list[tuple[str, dict[str, Any]]]
) -> None:
    shortcut = message_shortcut(
        "save_to_lore",
        text="The deploy freeze starts on Dec 20.",
        message_ts="1600005000.000200",
        thread_ts="1600005000.000100",
        response_url=bot.response_url,
    )
    assert bot.sender.interaction(shortcut).status_code == 200
    confirmation = fake_slack.wait_for("respond")[0]
    assert confirmation["response_type"] == "ephemeral" and "Saving this thread" in confirmation["text"]
    assert published == [
        (
            "workers.ingest_tasks.ingest_slack_thread",
            {"channel_id": "C0GENERAL", "thread_ts": "1600005000.000100", "acl": ["C0GENERAL"]},
        ),
    ]


def test_ask_lore_about_this_answers_in_that_messages_thread(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    shortcut = message_shortcut(
        "ask_lore",
        text="Does the deploy freeze cover hotfixes?",
        message_ts="1600005100.000100",
        response_url=bot.response_url,
    )
    assert bot.sender.interaction(shortcut).status_code == 200
    posted = fake_slack.wait_for("chat.postMessage")[0]
    assert posted["thread_ts"] == "1600005100.000100" and posted["channel"] == "C0GENERAL"
    assert answerer.calls[0]["question"] == "Does the deploy freeze cover hotfixes?"


def test_live_indexing_sends_new_edited_and_deleted_messages(
    start_bot: Callable[..., RunningBot],
    bot_settings: Settings,
    answerer: ScriptedAnswerer,
    fake_slack: FakeSlack,
    published: list[tuple[str, dict[str, Any]]],
) -> None:
    with raw_connection(bot_settings) as conn:
        conn.execute("INSERT INTO channel_settings (channel_id, live_index) VALUES ('C0TABLE', true)")
    running = start_bot(bot_settings.model_copy(update={"live_index_channels": "C0LIVE"}), answerer)
    running.sender.event(message("Staging is down until 3pm", channel="C0LIVE", ts="1600005200.000100"))
    running.sender.event(message("Use the new VPN", channel="C0TABLE", ts="1600005200.000200"))
    running.sender.event(message("not indexed", channel="C0QUIET", ts="1600005200.000300"))
    edited = message(
        "",
        channel="C0LIVE",
        ts="1600005200.000400",
        subtype="message_changed",
        message={"type": "message", "user": "U0ASKER", "ts": "1600005200.000100", "text": "Staging is down until 4pm"},
    )
    edited.pop("user")
    running.sender.event(edited)
    deleted = message(
        "",
        channel="C0LIVE",
        ts="1600005200.000500",
        subtype="message_deleted",
        deleted_ts="1600005200.000100",
        previous_message={"type": "message", "user": "U0ASKER", "ts": "1600005200.000100", "text": "x"},
    )
    deleted.pop("user")
    running.sender.event(deleted)
    wait_until(lambda: len(published) == 4)
    settle()
    by_ts = sorted(
        (kw["channel_id"], kw["ts"], kw["text"], kw["deleted"])
        for name, kw in published
        if name == "workers.ingest_tasks.ingest_slack_message"
    )
    assert by_ts == [
        ("C0LIVE", "1600005200.000100", "Staging is down until 3pm", False),
        ("C0LIVE", "1600005200.000100", "Staging is down until 4pm", False),
        ("C0LIVE", "1600005200.000100", "x", True),
        ("C0TABLE", "1600005200.000200", "Use the new VPN", False),
    ]
    assert all(kw["user_id"] == "U0ASKER" for _, kw in published)
    assert fake_slack.calls_to("chat.postMessage") == []  # indexing is not answering


def test_app_home_shows_the_knowledge_base_and_admins_see_the_most_downvoted(
    start_bot: Callable[..., RunningBot], bot_settings: Settings, answerer: ScriptedAnswerer, fake_slack: FakeSlack
) -> None:
    with raw_connection(bot_settings) as conn:
        conn.execute(
            "INSERT INTO documents (uri, title, content_hash, source_root) VALUES "
            "('file:///a.md', 'A', 'h1', '/docs'), ('file:///b.md', 'B', 'h2', '/docs'), "
            "('https://w.example.com/x', 'X', 'h3', 'https://w.example.com/')"
        )
        ids = [
            r[0]
            for r in conn.execute(
                "INSERT INTO answers (question, answer, model) VALUES ('why is the build red?', 'no idea', 'm'), "
                "('how do I deploy?', 'make deploy', 'm') RETURNING id"
            ).fetchall()
        ]
        conn.execute(
            "INSERT INTO votes (answer_id, user_id, value) VALUES (%s, 'U1', -1), (%s, 'U2', -1), (%s, 'U3', 1)",
            (ids[0], ids[0], ids[1]),
        )
        # A named source counts while its voter's 👍 stands, in the week it was named: U1's pick sits under a 👎,
        # U4's is older than a week.
        conn.execute(
            "INSERT INTO votes (answer_id, user_id, value, updated_at) VALUES (%s, 'U4', 1, now() - interval '8 days')",
            (ids[1],),
        )
        conn.execute(
            "INSERT INTO source_picks (answer_id, user_id, source_uri, created_at) VALUES "
            "(%s, 'U3', 'file:///b.md', now()), (%s, 'U1', 'file:///a.md', now()), "
            "(%s, 'U4', 'file:///a.md', now() - interval '8 days')",
            (ids[1], ids[0], ids[1]),
        )
    running = start_bot(bot_settings.model_copy(update={"admin_users": "U0ADMIN"}), answerer)
    home_opened = {
        "type": "app_home_opened",
        "user": "U0ADMIN",
        "channel": "D0HOME",
        "tab": "home",
        "event_ts": "1600005300.000100",
    }
    running.sender.event(home_opened)
    admin_view = fake_slack.wait_for("views.publish")[0]
    assert admin_view["user_id"] == "U0ADMIN"
    fields = [f["text"] for f in admin_view["view"]["blocks"][1]["fields"]]
    assert fields[:3] == ["*Documents*\n3", "*Chunks*\n0", "*Sources*\n2"]
    text = str(admin_view["view"])
    assert "2 answers · 1 👍 · 2 👎 · 1 source named" in text and "2 👎 — why is the build red?" in text
    running.sender.event({**home_opened, "user": "U0MEMBER"})
    member_view = fake_slack.wait_for("views.publish", 2)[1]
    assert member_view["user_id"] == "U0MEMBER" and "Most downvoted" not in str(member_view["view"])


def test_assistant_pane_prompts_shows_status_and_answers_in_its_thread(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    started = {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": "U0ASKER",
            "channel_id": "D0PANE",
            "thread_ts": "1600005400.000100",
            "context": {"channel_id": "C0GENERAL", "team_id": "T0TEAM", "enterprise_id": None},
        },
        "event_ts": "1600005400.000200",
    }
    bot.sender.event(started)
    prompts = fake_slack.wait_for("assistant.threads.setSuggestedPrompts")[0]
    assert prompts["channel_id"] == "D0PANE" and prompts["thread_ts"] == "1600005400.000100"
    assert len(prompts["prompts"]) == 3
    question = message(
        "what is the deploy freeze?",
        channel="D0PANE",
        ts="1600005400.000300",
        thread_ts="1600005400.000100",
        channel_type="im",
    )
    bot.sender.event(question)
    posted = fake_slack.wait_for("chat.postMessage")[0]
    assert posted["channel"] == "D0PANE" and posted["thread_ts"] == "1600005400.000100"
    status = fake_slack.calls_to("assistant.threads.setStatus")
    title = fake_slack.calls_to("assistant.threads.setTitle")
    assert status and status[0]["status"] == STATUS and title[0]["title"] == "what is the deploy freeze?"
    assert status[0]["loading_messages"] == LOADING_MESSAGES
    assert answerer.calls[0]["asker"].is_dm and answerer.calls[0]["asker"].private
    # A retry of the same message is not answered again.
    bot.sender.event(question, retry_num=1)
    settle()
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
