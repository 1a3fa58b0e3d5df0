"""Slack history into the knowledge base, against the local fake Web API: threads, paging, the bot's own
messages left out, channel ACL, incremental cursor, rate limits, and the Celery tasks on a real worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from harness.slack_api import BOT_ID, BOT_USER_ID, FakeSlack
from ingest.loaders import slack
from ingest.pipeline import ingest_sources
from lore.config import Settings, get_settings
from tests.ingest.helpers import rows

CHANNEL = "C0HANDBOOK"


def _msg(ts: str, text: str, user: str = "U1", **extra: Any) -> dict[str, Any]:
    return {"type": "message", "ts": ts, "text": text, "user": user, **extra}


def _fill(fake: FakeSlack) -> None:
    fake.history[CHANNEL] = [
        _msg("1700000001.000100", "How often do we rotate the VPN keys?", reply_count=2, thread_ts="1700000001.000100"),
        _msg("1700000002.000100", "Lore answer that must never be ingested", user=BOT_USER_ID, bot_id=BOT_ID),
        _msg("1700000003.000100", "The staging cluster moves to eu-central-1 on Monday."),
        _msg("1700000004.000100", "a message from the bot user without bot_id", user=BOT_USER_ID),
        _msg("1700000005.000100", "<@U9> has joined the channel", user="U9", subtype="channel_join"),
    ]
    fake.replies[(CHANNEL, "1700000001.000100")] = [
        fake.history[CHANNEL][0],
        _msg("1700000001.000200", "Every 180 days, IT sends a reminder.", user="U2", thread_ts="1700000001.000100"),
        _msg(
            "1700000001.000300",
            "bot reply in the thread",
            user=BOT_USER_ID,
            bot_id=BOT_ID,
            thread_ts="1700000001.000100",
        ),
    ]


@pytest.fixture
def slack_settings(db: Settings, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(slack, "PAGE_LIMIT", 2)  # five messages make three pages
    return db.model_copy(update={"slack_api_url": fake_slack.url, "slack_bot_token": SecretStr("xoxb-test-token")})


def _texts(settings: Settings) -> list[str]:
    return [t for (t,) in rows(settings, "SELECT text FROM chunks ORDER BY text")]


def test_channel_history_threads_acl_and_no_bot_messages(slack_settings: Settings, fake_slack: FakeSlack) -> None:
    _fill(fake_slack)
    report = ingest_sources(slack_settings, [f"slack://{CHANNEL}"])
    assert report.errors == [] and report.documents_added == 2
    everything = "\n".join(_texts(slack_settings))
    assert "Every 180 days, IT sends a reminder." in everything
    assert "<@U1>: How often do we rotate the VPN keys?" in everything
    assert "eu-central-1" in everything
    assert "Lore answer" not in everything and "bot reply" not in everything and "bot user" not in everything
    assert "joined" not in everything
    assert {tuple(acl) for (acl,) in rows(slack_settings, "SELECT acl FROM chunks")} == {(CHANNEL,)}
    uris = sorted(u for (u,) in rows(slack_settings, "SELECT uri FROM documents"))
    assert uris == [
        f"https://test.slack.com/archives/{CHANNEL}/p1700000001000100",
        f"https://test.slack.com/archives/{CHANNEL}/p1700000003000100",
    ]
    assert len(fake_slack.calls_to("conversations.history")) == 3  # paged
    assert rows(slack_settings, "SELECT cursor FROM sync_cursors")[0][0] == "1700000005.000100"


def test_incremental_sync_reads_only_new_messages_and_waits_out_rate_limits(
    slack_settings: Settings, fake_slack: FakeSlack
) -> None:
    _fill(fake_slack)
    ingest_sources(slack_settings, [f"slack://{CHANNEL}"])
    fake_slack.history[CHANNEL].append(_msg("1700000009.000100", "Deploy freeze starts December 20."))
    fake_slack.fail("conversations.history", status=429, retry_after=1, times=1)
    report = ingest_sources(slack_settings, [f"slack://{CHANNEL}"])
    assert report.errors == []
    assert (report.documents_added, report.documents_unchanged) == (1, 0)
    history = fake_slack.calls_to("conversations.history")
    assert history[-1]["oldest"] == "1700000005.000100"
    assert history[-2]["oldest"] == "1700000005.000100"  # the rate-limited attempt, retried
    assert rows(slack_settings, "SELECT cursor FROM sync_cursors")[0][0] == "1700000009.000100"


def test_missing_token_is_an_error_naming_the_channel(db: Settings, fake_slack: FakeSlack) -> None:
    settings = db.model_copy(update={"slack_api_url": fake_slack.url, "slack_bot_token": None})
    report = ingest_sources(settings, [f"slack://{CHANNEL}"])
    assert [e.as_json() for e in report.errors] == [
        {"source": f"slack://{CHANNEL}", "error": "SLACK_BOT_TOKEN is not set: cannot read Slack history"}
    ]


@pytest.fixture
def worker_env(fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The Celery worker thread reads settings from the environment: point them at the fake."""
    monkeypatch.setenv("SLACK_API_URL", fake_slack.url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_save_thread_and_live_messages_through_a_real_worker(
    celery_worker: object, db: Settings, fake_slack: FakeSlack, worker_env: None
) -> None:
    from workers.ingest_tasks import ingest_slack_message, ingest_slack_thread

    _fill(fake_slack)
    saved = ingest_slack_thread.delay(CHANNEL, "1700000001.000100", None).get(timeout=60)
    assert saved["documents_added"] == 1 and saved["chunks_added"] == 1
    assert "Every 180 days" in _texts(db)[0]

    new = ingest_slack_message.delay(CHANNEL, "1700000020.000100", "Backups are kept 35 days.", "U3", None, False)
    assert new.get(timeout=60)["documents_added"] == 1
    own = ingest_slack_message.delay(CHANNEL, "1700000021.000100", "my own answer", BOT_USER_ID, None, False)
    assert own.get(timeout=60)["documents_added"] == 0
    assert not any("my own answer" in t for t in _texts(db))

    gone = ingest_slack_message.delay(CHANNEL, "1700000020.000100", "", "U3", None, True).get(timeout=60)
    assert gone["documents_deleted"] == 1
    assert not any("35 days" in t for t in _texts(db))
