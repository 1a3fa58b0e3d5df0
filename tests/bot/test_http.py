"""The HTTP surface: Slack's signature check (401), malformed bodies (4xx, no crash), /healthz and /metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest

from bot.app import create_app
from bot.server import create_http_app
from harness.slack_api import BOT_USER_ID, FakeSlack
from harness.slack_signing import SlackSender, app_mention, event_envelope
from lore.config import Settings
from tests.bot.conftest import SECRET, RunningBot, ScriptedAnswerer, _Server, settle


def test_bad_or_stale_signatures_are_refused_with_401(bot: RunningBot, fake_slack: FakeSlack) -> None:
    body = json.dumps(event_envelope(app_mention(f"<@{BOT_USER_ID}> hi", ts="1600001000.000100"))).encode()
    wrong_secret = bot.sender.post_raw(body, "application/json", secret="not-the-secret")
    stale = bot.sender.post_raw(body, "application/json", timestamp=int(time.time()) - 60 * 10)
    unsigned = bot.sender.post_raw(body, "application/json", sign=False)
    assert [wrong_secret.status_code, stale.status_code, unsigned.status_code] == [401, 401, 401]
    settle()
    assert fake_slack.calls_to("chat.postMessage") == []


def test_malformed_bodies_get_4xx_and_the_server_keeps_serving(bot: RunningBot, fake_slack: FakeSlack) -> None:
    bad_json = bot.sender.post_raw(b'{"type": "event_callback", "event": ', "application/json")
    bad_payload = bot.sender.post_raw(b"payload=%7Bnot-json", "application/x-www-form-urlencoded")
    not_utf8 = bot.sender.post_raw(b"\xff\xfe\xfa", "application/json")
    unknown = bot.sender.post_raw(json.dumps({"type": "something_else"}).encode(), "application/json")
    too_big = bot.sender.post_raw(b"x" * 1_100_000, "application/json")
    codes = [r.status_code for r in (bad_json, bad_payload, not_utf8, unknown, too_big)]
    assert all(400 <= code < 500 for code in codes), codes
    # Still alive and answering.
    assert bot.sender.event(app_mention(f"<@{BOT_USER_ID}> still there?", ts="1600001100.000100")).status_code == 200
    fake_slack.wait_for("chat.postMessage")


def test_url_verification_challenge_is_answered(bot: RunningBot) -> None:
    body = json.dumps({"token": "x", "challenge": "c-123", "type": "url_verification"}).encode()
    response = bot.sender.post_raw(body, "application/json")
    assert response.status_code == 200 and "c-123" in response.text


def test_healthz_and_metrics(bot: RunningBot, fake_slack: FakeSlack) -> None:
    health = httpx.get(bot.url + "/healthz")
    assert health.status_code == 200 and health.json()["database"] == "up"
    bot.sender.event(app_mention(f"<@{BOT_USER_ID}> count me", ts="1600001200.000100"))
    fake_slack.wait_for("chat.postMessage")
    settle(0.3)
    text = httpx.get(bot.url + "/metrics").text
    assert 'lore_slack_events_total{kind="app_mention"}' in text
    assert 'lore_answers_total{outcome="ok",surface="slack"}' in text
    assert "lore_answer_latency_seconds_bucket" in text


def test_healthz_is_503_when_the_database_is_down(
    bot_settings: Settings, answerer: ScriptedAnswerer, fake_slack: FakeSlack
) -> None:
    broken = bot_settings.model_copy(update={"database_url": "postgresql://lore@127.0.0.1:9/lore"})
    bolt = create_app(broken, answerer=answerer)
    with _Server(create_http_app(broken, bolt_app=bolt)) as server:
        response = httpx.get(f"http://127.0.0.1:{server.port}/healthz")
    assert response.status_code == 503 and response.json()["database"] == "down"


def test_ack_comes_before_slow_work(
    start_bot: Callable[..., RunningBot], bot_settings: Settings, fake_slack: FakeSlack
) -> None:
    slow = ScriptedAnswerer(bot_settings, delay_s=2.0)
    running = start_bot(bot_settings, slow)
    started = time.monotonic()
    response = running.sender.event(app_mention(f"<@{BOT_USER_ID}> slow one", ts="1600001300.000100"))
    acked_in = time.monotonic() - started
    assert response.status_code == 200 and acked_in < 0.5, acked_in
    assert fake_slack.calls_to("chat.postMessage") == []
    fake_slack.wait_for("chat.postMessage", timeout=10)


def test_signing_helper_matches_slacks_documented_example() -> None:
    # The example from Slack's "Verifying requests from Slack" page.
    from harness.slack_signing import signature

    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body) == expected


def test_create_app_refuses_without_secrets(bot_settings: Settings, answerer: ScriptedAnswerer) -> None:
    import pytest

    from lore.config import ConfigError

    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        create_app(bot_settings.model_copy(update={"slack_signing_secret": None}), answerer=answerer)
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        create_app(bot_settings.model_copy(update={"slack_bot_token": None}), answerer=answerer)


def test_events_beyond_the_dispatch_backlog_get_503_so_slack_retries_them(
    bot_settings: Settings, answerer: ScriptedAnswerer, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events are acknowledged before Bolt runs; one the bot could not take gets 503 (Slack retries), not a
    200 it would then drop."""
    import bot.server

    monkeypatch.setattr(bot.server, "MAX_PENDING_EVENTS", 0)
    bolt = create_app(bot_settings, answerer=answerer)
    with _Server(create_http_app(bot_settings, bolt_app=bolt)) as server:
        sender = SlackSender(f"http://127.0.0.1:{server.port}", SECRET)
        refused = sender.event(app_mention(f"<@{BOT_USER_ID}> anyone?", ts="1600001400.000100"))
        challenge = sender.post_raw(
            json.dumps({"token": "x", "challenge": "c-9", "type": "url_verification"}).encode(), "application/json"
        )
        sender.close()
    assert refused.status_code == 503
    assert challenge.status_code == 200 and "c-9" in challenge.text  # only events take the backlog path
    settle()
    assert fake_slack.calls_to("chat.postMessage") == []
