"""Faults with real processes: Redis restarted during a burst of reactions, PostgreSQL restarted while the bot
serves, an LLM endpoint failing in every way, and Slack rate-limiting the bot.

A Celery worker SIGKILLed mid-ingest (the job completes on redelivery, chunk counts exact) is tested in
tests/ingest/test_queue.py::test_worker_killed_mid_batch_then_a_second_worker_completes_the_job.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from harness import procs
from harness.canaries import BOT_TOKEN, OPENAI_KEY, SIGNING_SECRET
from harness.kb import add_document
from harness.openai_server import FakeOpenAI
from harness.polling import wait_until
from harness.slack_api import BOT_USER_ID, FakeSlack
from harness.slack_signing import SlackSender, app_mention
from lore.agent import answer_question
from lore.config import Settings
from lore.db import pgdata_dir, raw_connection
from tests.bot.conftest import RunningBot, ScriptedAnswerer, settle
from tests.reliability.conftest import find_secrets

# -- Redis restarted during a burst of reactions ----------------------------------------------------------

ANSWERS, USERS = 10, 15


def _reaction(user: str, reaction: str, channel: str, ts: str, *, added: bool, event_ts: str) -> dict[str, Any]:
    return {
        "type": "reaction_added" if added else "reaction_removed",
        "user": user,
        "reaction": reaction,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "item_user": BOT_USER_ID,
        "event_ts": event_ts,
    }


def _reaction_plan() -> tuple[list[dict[str, Any]], dict[tuple[int, str], int]]:
    """Reactions in Slack's event order, and the votes they must leave (answer index, user) -> value."""
    clock = itertools.count(1)
    events: list[dict[str, Any]] = []
    expected: dict[tuple[int, str], int] = {}
    for a in range(ANSWERS):
        for u in range(USERS):
            user, ts = f"U{u:04d}", f"1690000000.{a:06d}"

            def react(reaction: str, added: bool = True) -> None:
                events.append(
                    _reaction(user, reaction, "C0RX", ts, added=added, event_ts=f"1690001000.{next(clock):06d}")  # noqa: B023
                )

            kind = (a * USERS + u) % 4
            if kind == 0:
                react("+1")
                expected[(a, user)] = 1
            elif kind == 1:
                react("-1")
                expected[(a, user)] = -1
            elif kind == 2:  # added, then taken back
                react("thumbsup")
                react("thumbsup", added=False)
            else:  # changed their mind: the latest reaction wins
                react("+1")
                react("-1")
                expected[(a, user)] = -1
    return events, expected


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[procs.RedisServer]:
    with procs.RedisServer(tmp_path / "redis") as server:
        yield server


def test_redis_restart_during_a_burst_of_reactions_loses_and_doubles_no_vote(
    start_bot: Callable[..., RunningBot],
    bot_settings: Settings,
    redis_server: procs.RedisServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = bot_settings.model_copy(update={"redis_url": redis_server.url, "feedback_broker_timeout_s": 0.5})
    with raw_connection(settings) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "INSERT INTO answers (question, answer, model, channel_id, message_ts) "
                "SELECT 'q' || n, 'a', 'm', 'C0RX', '1690000000.' || lpad(n::text, 6, '0') "
                "FROM generate_series(0, %s) AS n ORDER BY n RETURNING id",
                (ANSWERS - 1,),
            ).fetchall()
        ]
    env = procs.clean_env(REDIS_URL=redis_server.url, LORE_CELERY_VISIBILITY_TIMEOUT="5")
    worker = procs.worker(env, tmp_path / "worker.log", queues="feedback")
    procs.wait_until(lambda: " ready." in worker.output(), timeout=90, what="the Celery worker", interval=0.2)
    running = start_bot(settings, ScriptedAnswerer(settings))
    events, expected = _reaction_plan()
    third = len(events) // 3

    def send(batch: list[dict[str, Any]]) -> None:
        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(lambda e: running.sender.event(e).status_code, batch)) == {200}

    try:
        send(events[:third])
        redis_server.stop()  # mid-burst: some tasks queued, some being worked on
        send(events[third : 2 * third])
        settle(1.0)
        # While the broker is down, votes go straight to PostgreSQL without holding the bot's threads:
        # a question asked now is answered at once.
        asked = time.monotonic()
        running.sender.event(app_mention(f"<@{BOT_USER_ID}> still answering?", ts="1690009999.000100"))
        running.fake.wait_for("chat.postMessage", timeout=10)
        answered_in = time.monotonic() - asked
        # Votes are batched: each log line names how many votes its batch held.
        fallbacks_during = sum(
            int(re.search(r"size=(\d+)", r.getMessage()).group(1))  # type: ignore[union-attr]
            for r in caplog.records
            if "feedback_broker_down" in r.getMessage() and "written=True" in r.getMessage()
        )
        assert fallbacks_during >= len(events[third : 2 * third]), fallbacks_during
        redis_server.start()
        send(events[2 * third :])

        def votes() -> dict[tuple[int, str], int]:
            with raw_connection(settings) as conn:
                rows = conn.execute("SELECT answer_id, user_id, value FROM votes").fetchall()
            return {(ids.index(a), u): v for a, u, v in rows}

        try:
            wait_until(lambda: votes() == expected, timeout=90)
        except AssertionError:
            got = votes()
            missing = {k: v for k, v in expected.items() if got.get(k) != v}
            extra = {k: v for k, v in got.items() if k not in expected}
            raise AssertionError(
                f"lost/wrong: {len(missing)} {list(missing.items())[:5]}, extra: {list(extra.items())[:5]}\n"
                + worker.output()[-3000:]
            ) from None
        settle(6.0)  # past the visibility timeout: a late redelivery would show up now
        assert votes() == expected
    finally:
        worker_log = worker.stop()
    fallbacks = [r for r in caplog.records if "feedback_broker_down" in r.getMessage()]
    through_worker = worker_log.count("workers.feedback_tasks.record_feedback_batch[")
    assert fallbacks, "the outage never reached the bot"
    assert through_worker > 0, worker_log[-2000:]
    print(
        f"\n{len(events)} reactions, {len(expected)} votes exact; {len(fallbacks)} via PostgreSQL fallback; "
        f"a question during the outage answered in {answered_in:.2f} s"
    )


# -- PostgreSQL restarted while `lore serve --http` serves ----------------------------------------------


def thread_text(fake: FakeSlack, channel: str, thread_ts: str) -> str:
    """Everything the bot sent into a thread: posts and streams started there, and every edit of them."""
    own = {m["ts"] for m in fake.replies.get((channel, thread_ts), [])}
    methods = ("chat.postMessage", "chat.startStream", "chat.appendStream", "chat.stopStream", "chat.update")
    calls = [c for m in methods for c in fake.calls_to(m) if c.get("thread_ts") == thread_ts or c.get("ts") in own]
    return json.dumps(calls)


@pytest.fixture
def served(db: Settings, fake_slack: FakeSlack, tmp_path: Path) -> Iterator[tuple[str, procs.Service]]:
    env = procs.clean_env(
        SLACK_API_URL=fake_slack.url, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
        OPENAI_API_KEY=OPENAI_KEY, LORE_EMBEDDINGS="local", LORE_CHAT_MODEL="", OPENAI_BASE_URL="",
    )  # fmt: skip
    env.pop("LORE_CHAT_MODEL")
    env.pop("OPENAI_BASE_URL")
    env.pop("OPENAI_API_KEY")  # search-only here; the LLM faults are tested below
    service, url = procs.serve_http(env, tmp_path / "serve.log")
    yield url, service
    output = service.stop()
    assert find_secrets(output) == []


def test_postgres_restart_while_serving_apologises_then_recovers_without_restart(
    db: Settings, served: tuple[str, procs.Service], fake_slack: FakeSlack
) -> None:
    url, service = served
    backups = "Database backups run nightly at 02:00 UTC and are kept for 35 days."
    add_document(db, uri="https://wiki.example.com/backups", title="Backups", sections=[("Backups", backups)])
    sender = SlackSender(url, SIGNING_SECRET)
    question = f"<@{BOT_USER_ID}> how long are database backups kept?"
    assert sender.event(app_mention(question, ts="1691000000.000100")).status_code == 200
    wait_until(lambda: "35 days" in thread_text(fake_slack, "C0GENERAL", "1691000000.000100"), timeout=60)
    pid = service.process.pid
    pgdata = pgdata_dir(db)
    socket_dir = procs.stop_postgres(pgdata)
    try:
        outage = [f"1691000001.00010{n}" for n in range(3)]
        for ts in outage:
            assert sender.event(app_mention(question, ts=ts)).status_code == 200
        health = httpx.get(url + "/healthz", timeout=10)
        assert health.status_code == 503

        def apologised() -> bool:
            return all("Sorry" in thread_text(fake_slack, "C0GENERAL", ts) for ts in outage)

        wait_until(apologised, timeout=60)
    finally:
        procs.start_postgres(pgdata, socket_dir)
    wait_until(lambda: httpx.get(url + "/healthz", timeout=10).status_code == 200, timeout=30)
    assert sender.event(app_mention(question, ts="1691000002.000100")).status_code == 200

    def answered_after() -> bool:
        text = thread_text(fake_slack, "C0GENERAL", "1691000002.000100")
        return "35 days" in text and "Sorry" not in text

    wait_until(answered_after, timeout=60)
    assert service.alive() and service.process.pid == pid
    sender.close()


# -- the LLM endpoint failing ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["http-500", "timeout", "malformed-stream"])
def test_llm_failures_get_the_apology_and_nothing_hangs(
    start_bot: Callable[..., RunningBot],
    bot_settings: Settings,
    fake_slack: FakeSlack,
    fake_openai: FakeOpenAI,
    fault: str,
) -> None:
    add_document(bot_settings, uri="https://wiki.example.com/deploy", title="Deploying",
                 sections=[("Deploy", "Production deploys run with `make deploy` from the main branch.")])  # fmt: skip
    settings = bot_settings.model_copy(
        update={"openai_base_url": fake_openai.url, "chat_model": "fake-model", "llm_timeout_s": 1.0,
                "openai_api_key": SecretStr(OPENAI_KEY)}
    )  # fmt: skip
    running = start_bot(settings, partial(answer_question))
    if fault == "http-500":
        fake_openai.fail(500, times=2)  # the client retries once
    elif fault == "timeout":
        fake_openai.delay(4.0, times=2)
    else:
        fake_openai.reply("Run make deploy from main [1].")
        fake_openai.malformed_stream(times=1)
    started = time.monotonic()
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> how do I deploy?", ts="1692000000.000100"))

    def apology() -> str:
        texts = [c["text"] for c in fake_slack.calls_to("chat.postMessage") + fake_slack.calls_to("chat.update")]
        return next((t for t in texts if "Sorry" in t), "")

    assert "reference `" in wait_until(apology, timeout=30)
    elapsed = time.monotonic() - started
    assert elapsed < 20, elapsed
    # The next question is answered normally: nothing is stuck.
    fake_openai.reply("Run make deploy from main [1].")
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> and how do I deploy?", ts="1692000001.000100"))

    def answered() -> bool:
        texts = json.dumps(fake_slack.calls_to("chat.postMessage") + fake_slack.calls_to("chat.update"))
        return "make deploy from main" in texts and "https://wiki.example.com/deploy" in texts

    wait_until(answered, timeout=30)
    print(f"\n{fault}: apology after {elapsed:.1f} s")


# -- Slack rate-limiting the bot ------------------------------------------------------------------------


def test_slack_429_retry_after_is_honoured(bot: RunningBot, fake_slack: FakeSlack) -> None:
    fake_slack.fail("chat.postMessage", status=429, retry_after=2, times=1)
    root = "1693000000.000100"
    bot.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts=root))
    fake_slack.wait_for("chat.postMessage", 1)
    first = time.monotonic()
    fake_slack.wait_for("chat.postMessage", 2, timeout=15)
    waited = time.monotonic() - first
    assert waited >= 1.8, waited  # Retry-After: 2 was honoured, not hammered
    settle()
    posts = fake_slack.calls_to("chat.postMessage")
    assert len(posts) == 2 and posts[0] == posts[1]  # the same message, sent again once
    assert [m["thread_ts"] for m in fake_slack.replies[("C0GENERAL", root)]] == [root]  # posted once
    assert "make deploy" in str(posts[1]["blocks"])
