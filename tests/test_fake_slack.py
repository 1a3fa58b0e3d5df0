"""The fake Slack Web API behaves like Slack for the calls Lore makes (so other tests can trust it)."""

from __future__ import annotations

import time

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from harness.slack_api import BOT_USER_ID, FakeSlack


def test_records_calls_and_pages_history(fake_slack: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake_slack.url)
    assert client.auth_test()["user_id"] == BOT_USER_ID
    posted = client.chat_postMessage(channel="C1", text="hello", thread_ts="1.000001")
    assert posted["ts"] and fake_slack.calls_to("chat.postMessage")[0]["text"] == "hello"
    fake_slack.history["C2"] = [{"ts": f"{100 + i}.000000", "text": f"m{i}", "user": "U1"} for i in range(5)]
    first = client.conversations_history(channel="C2", limit=2)
    assert [m["text"] for m in first["messages"]] == ["m4", "m3"]
    rest = client.conversations_history(channel="C2", limit=10, cursor=first["response_metadata"]["next_cursor"])
    assert [m["text"] for m in rest["messages"]] == ["m2", "m1", "m0"]
    assert client.conversations_replies(channel="C1", ts="1.000001")["messages"][0]["text"] == "hello"


def test_rate_limit_carries_retry_after_and_sdk_honours_it(fake_slack: FakeSlack) -> None:
    fake_slack.fail("conversations.history", retry_after=1)
    bare = WebClient(token="xoxb-test", base_url=fake_slack.url)
    with pytest.raises(SlackApiError) as info:
        bare.conversations_history(channel="C1")
    assert info.value.response.status_code == 429
    assert info.value.response.headers.get("Retry-After") == "1"

    fake_slack.fail("conversations.history", retry_after=1)
    patient = WebClient(token="xoxb-test", base_url=fake_slack.url)
    patient.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    started = time.monotonic()
    assert patient.conversations_history(channel="C1")["ok"] is True
    assert time.monotonic() - started >= 0.9
    assert fake_slack.methods().count("conversations.history") == 3
