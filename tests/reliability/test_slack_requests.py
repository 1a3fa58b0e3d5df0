"""Hostile Slack requests against the real HTTP app (property-based), and 1,000 events delivered with retries,
duplicates and message+app_mention pairs: exactly one answer each.

Signature basics (a wrong secret, a 10-minute-old timestamp, no signature) and a fixed set of malformed
bodies are in tests/bot/test_http.py; here hypothesis generates many variants of each kind of attack.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import httpx
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from harness.polling import wait_until
from harness.slack_api import BOT_USER_ID, FakeSlack
from harness.slack_signing import app_mention, event_envelope, message, signature
from lore.db import raw_connection
from tests.bot.conftest import SECRET, RunningBot, ScriptedAnswerer, settle

MAX_BODY = 1_000_000


def _answers(bot: RunningBot) -> int:
    with raw_connection(bot.settings) as conn:
        return int(conn.execute("SELECT count(*) FROM answers").fetchone()[0])


def _valid_bodies() -> st.SearchStrategy[tuple[bytes, str]]:
    """Requests Slack could send (each would be answered or acted on if it were accepted)."""
    mention = st.integers(1, 10**6).map(
        lambda n: json.dumps(
            {
                **event_envelope(app_mention(f"<@{BOT_USER_ID}> leak {n}?", ts=f"1650000000.{n:06d}")),
                "event_id": f"EvH{n:07d}",  # fixed, so hypothesis can replay the exact bytes
                "event_time": 1650000000,
                "event_context": "ctx",
            }
        ).encode()
    )
    command = st.text(min_size=1, max_size=50).map(
        lambda text: urlencode(
            {"command": "/ask", "text": text or "x", "channel_id": "C0GENERAL", "user_id": "U0ASKER",
             "team_id": "T0TEAM", "response_url": "https://hooks.slack.com/x", "trigger_id": "1.2"}
        ).encode()
    )  # fmt: skip
    return st.one_of(
        mention.map(lambda b: (b, "application/json")), command.map(lambda b: (b, "application/x-www-form-urlencoded"))
    )


def _headers(ts: str, sig: str | None, content_type: str | None) -> dict[str, str]:
    headers = {"X-Slack-Request-Timestamp": ts}
    if sig is not None:
        headers["X-Slack-Signature"] = sig
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    """(kind, body, headers) of a request Slack did not send, or cannot be a Slack payload."""
    kind = draw(st.sampled_from(["forged", "stale", "missing", "content_type", "oversized", "malformed"]))
    now = int(time.time())
    body, content_type = draw(_valid_bodies())
    if kind == "forged":
        wrong = draw(st.text(min_size=1, max_size=40).filter(lambda s: s != SECRET))
        sig = draw(
            st.one_of(
                st.just(signature(wrong, str(now), body)),
                st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=80).map(lambda s: "v0=" + s),
                st.binary(min_size=32, max_size=32).map(lambda b: "v0=" + b.hex()),
            )
        )
        return kind, body, _headers(str(now), sig, content_type)
    if kind == "stale":
        ts = str(now + draw(st.one_of(st.integers(-(10**9), -301), st.integers(301, 10**9))))
        return kind, body, _headers(ts, signature(SECRET, ts, body), content_type)
    if kind == "missing":
        ts = str(now)
        sig = signature(SECRET, ts, body)
        drop = draw(st.sampled_from(["signature", "timestamp", "both", "garbled-timestamp"]))
        if drop == "signature":
            return kind, body, _headers(ts, None, content_type)
        headers = _headers(ts, sig, content_type)
        if drop in ("timestamp", "both"):
            del headers["X-Slack-Request-Timestamp"]
        if drop == "both":
            del headers["X-Slack-Signature"]
        if drop == "garbled-timestamp":
            headers["X-Slack-Request-Timestamp"] = draw(st.text(alphabet="abc-+.x9", min_size=1, max_size=12))
        return kind, body, headers
    if kind == "content_type":
        wrong_type = draw(
            st.sampled_from(["text/plain", "application/xml", "multipart/form-data; boundary=x", "text/html",
                             "application/octet-stream", "application/x-www-form-urlencoded-not", None])
        )  # fmt: skip
        ts = str(now)
        return kind, body, _headers(ts, signature(SECRET, ts, body), wrong_type)
    if kind == "oversized":
        padded = body + b" " * (MAX_BODY - len(body) + draw(st.integers(1, 2 * MAX_BODY)))
        ts = str(now)
        return kind, padded, _headers(ts, signature(SECRET, ts, padded), content_type)
    # malformed: correctly signed, but not a Slack payload at all
    broken = draw(
        st.one_of(
            st.binary(max_size=400).map(lambda b: (b, "application/json")),
            st.just(body[: max(1, len(body) // 2)]).map(lambda b: (b, "application/json")),
            st.sampled_from([b"[]", b"null", b"42", b'"text"', b"{", b"\xff\xfe"]).map(
                lambda b: (b, "application/json")
            ),
            st.text(max_size=200)
            .map(lambda t: ("payload=" + t).encode())
            .map(lambda b: (b, "application/x-www-form-urlencoded")),
            st.binary(max_size=300).map(lambda b: (b, "application/x-www-form-urlencoded")),
        )
    )
    ts = str(now)
    return kind, broken[0], _headers(ts, signature(SECRET, ts, broken[0]), broken[1])


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=hostile_requests())
def test_hostile_requests_are_refused_and_nothing_runs(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer, request: tuple[str, bytes, dict[str, str]]
) -> None:
    kind, body, headers = request
    before = len(fake_slack.calls)
    response = bot.sender.http.post(bot.sender.url, content=body, headers=headers)
    assert 400 <= response.status_code < 500, (kind, response.status_code, body[:200], headers)
    assert answerer.calls == [], kind
    assert len(fake_slack.calls) == before, (kind, fake_slack.methods()[before:])


@hsettings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(hostile_requests(), min_size=40, max_size=40))
def test_concurrent_attacks_leave_no_trace_and_the_server_still_answers(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer, requests: list[tuple[str, bytes, dict]]
) -> None:
    # Bursts of every kind at once, then a real event: answered once, and nothing else happened.
    answered_before = _answers(bot)
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(lambda r: bot.sender.http.post(bot.sender.url, content=r[1], headers=r[2]).status_code, requests)
        )
    assert all(400 <= c < 500 for c in codes), codes
    settle()
    assert len(answerer.calls) == answered_before == _answers(bot)
    assert len(fake_slack.calls_to("chat.postMessage")) == answered_before
    ts = f"1650009999.{answered_before:06d}"
    assert bot.sender.event(app_mention(f"<@{BOT_USER_ID}> still up?", ts=ts)).status_code == 200
    fake_slack.wait_for("chat.postMessage", answered_before + 1)
    assert _answers(bot) == answered_before + 1


def test_replayed_requests_act_once_and_old_signatures_do_not_transfer(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    body = json.dumps(event_envelope(app_mention(f"<@{BOT_USER_ID}> replay me", ts="1650010000.000100"))).encode()
    ts = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
               "X-Slack-Signature": signature(SECRET, ts, body)}  # fmt: skip
    # The same captured bytes, replayed within the 5-minute window: accepted by the signature check, acted on once.
    codes = [bot.sender.http.post(bot.sender.url, content=body, headers=headers).status_code for _ in range(5)]
    assert codes == [200] * 5
    fake_slack.wait_for("chat.postMessage")
    settle()
    assert len(fake_slack.calls_to("chat.postMessage")) == 1 and len(answerer.calls) == 1
    # The captured signature with a fresh timestamp (to get past the 5-minute window) no longer matches.
    fresh = {**headers, "X-Slack-Request-Timestamp": str(int(time.time()) + 400)}
    assert bot.sender.http.post(bot.sender.url, content=body, headers=fresh).status_code == 401
    # The capture replayed after the window (its own timestamp, now 6 minutes old) is refused.
    old_ts = str(int(time.time()) - 360)
    old = {**headers, "X-Slack-Request-Timestamp": old_ts, "X-Slack-Signature": signature(SECRET, old_ts, body)}
    assert bot.sender.http.post(bot.sender.url, content=body, headers=old).status_code == 401
    settle()
    assert len(answerer.calls) == 1 and _answers(bot) == 1


EVENTS = 1000


def _deliveries(n: int) -> list[tuple[dict[str, Any], str, int | None]]:
    """Every way Slack may deliver question n more than once: (event, event id, retry number)."""
    ts = f"1660000000.{n:06d}"
    if n % 4 == 3:  # a DM: the delivery, Slack's retries, and a duplicate of the first delivery
        dm = message(f"question {n} in a DM", channel=f"D{n:07d}", ts=ts, channel_type="im")
        return [(dm, f"EvD{n:07d}", None), (dm, f"EvD{n:07d}", 1), (dm, f"EvD{n:07d}", 2), (dm, f"EvD{n:07d}", None)]
    channel = f"C{n % 7:07d}"
    mention = app_mention(f"<@{BOT_USER_ID}> question {n}?", channel=channel, ts=ts)
    as_message = message(f"<@{BOT_USER_ID}> question {n}?", channel=channel, ts=ts)
    return [
        (mention, f"EvM{n:07d}", None),
        (as_message, f"EvP{n:07d}", None),  # the same post as a `message` event: another event id
        (mention, f"EvM{n:07d}", 1),
        (as_message, f"EvP{n:07d}", 1),
    ]


def test_a_thousand_events_with_retries_and_duplicates_get_exactly_one_answer_each(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    deliveries = [d for n in range(EVENTS) for d in _deliveries(n)]
    # Interleave: a retry may arrive before, during or after the first delivery is handled.
    deliveries = deliveries[0::3] + deliveries[1::3] + deliveries[2::3]
    client = httpx.Client(timeout=30)

    def send(delivery: tuple[dict[str, Any], str, int | None]) -> int:
        event, event_id, retry = delivery
        envelope = json.dumps(event_envelope(event, event_id=event_id)).encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
                   "X-Slack-Signature": signature(SECRET, ts, envelope)}  # fmt: skip
        if retry is not None:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return client.post(bot.sender.url, content=envelope, headers=headers).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, deliveries))
    client.close()
    assert codes == [200] * len(deliveries)
    wait_until(lambda: len(fake_slack.calls_to("chat.postMessage")) >= EVENTS, timeout=120)
    settle(1.0)
    elapsed = time.monotonic() - started
    posts = fake_slack.calls_to("chat.postMessage")
    threads = [(p["channel"], p["thread_ts"]) for p in posts]
    assert len(posts) == EVENTS and len(set(threads)) == EVENTS, (len(posts), len(set(threads)))
    assert len(answerer.calls) == EVENTS
    with raw_connection(bot.settings) as conn:
        rows = conn.execute("SELECT channel_id, thread_ts, count(*) FROM answers GROUP BY 1, 2").fetchall()
    assert len(rows) == EVENTS and {r[2] for r in rows} == {1}
    assert {(r[0], r[1]) for r in rows} == set(threads)
    print(f"\n{len(deliveries)} deliveries of {EVENTS} events in {elapsed:.1f} s: {len(posts)} answers")


def test_signed_requests_with_another_content_type_or_a_non_numeric_timestamp_are_refused(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    # Regressions: Bolt guesses the format of a body it is given (a JSON body sent as text/plain was answered),
    # and raised on a non-numeric timestamp (HTTP 500 and a listener error instead of a 401).
    body = json.dumps(event_envelope(app_mention(f"<@{BOT_USER_ID}> as text", ts="1650020000.000100"))).encode()
    ts = str(int(time.time()))
    signed = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature(SECRET, ts, body)}
    as_text = bot.sender.http.post(bot.sender.url, content=body, headers={**signed, "Content-Type": "text/plain"})
    garbled = {**signed, "Content-Type": "application/json", "X-Slack-Request-Timestamp": "soon"}
    no_number = bot.sender.http.post(bot.sender.url, content=body, headers=garbled)
    assert (as_text.status_code, no_number.status_code) == (415, 401)
    settle()
    assert answerer.calls == [] and fake_slack.calls_to("chat.postMessage") == []
