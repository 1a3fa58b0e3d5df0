"""The answer processes of `lore serve` (bot/pool.py): real spawned workers answering in search-only mode
through the fake Slack, replaced when they retire or die."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr

from bot.jobs_answer import AnswerJob
from bot.pool import AnswerProcesses
from harness.kb import add_document
from harness.openai_server import FakeOpenAI
from harness.polling import wait_until
from harness.slack_api import FakeSlack
from lore.config import Settings
from tests.bot.conftest import settle, thread_posts

START_S = 90.0  # a worker imports torch and loads the embedder before it is ready (niced, on 2 shared cores)


def job(n: int) -> AnswerJob:
    return AnswerJob(
        question=f"how do deploys work? ({n})",
        channel_id="C0POOL",
        thread_ts=f"1700000{n:03d}.000100",
        user_id="U0ASKER",
        team_id="T0TEAM",
        channel_type="channel",
    )


def answered_once(fake: FakeSlack, jobs: list[AnswerJob]) -> bool:
    counts = [len(thread_posts(fake, j.thread_ts)) for j in jobs]
    assert all(c <= 1 for c in counts), f"a question was answered twice: {counts}"
    return all(c == 1 for c in counts)


@pytest.fixture
def make_pool(bot_settings: Settings) -> Iterator[Callable[..., AnswerProcesses]]:
    pools: list[AnswerProcesses] = []

    def make(settings: Settings = bot_settings, **kwargs: int) -> AnswerProcesses:
        pool = AnswerProcesses(settings, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close(10.0)


def test_workers_retire_after_their_budget_and_every_question_is_answered_once(
    make_pool: Callable[..., AnswerProcesses], fake_slack: FakeSlack
) -> None:
    pool = make_pool(processes=1, threads=2, max_answers=2)
    first = wait_until(lambda: pool.ready_pids(), timeout=START_S)
    jobs = [job(n) for n in range(5)]
    for j in jobs:
        pool.submit(j)
    wait_until(lambda: answered_once(fake_slack, jobs), timeout=3 * START_S)
    settle(1.0)
    assert answered_once(fake_slack, jobs)
    # 5 jobs at 2 per worker: the first and second workers retired, a third took the last job.
    assert pool.replaced >= 2
    assert pool.ready_pids() and pool.ready_pids() != first
    wait_until(lambda: len(pool.workers) == 1, timeout=30)  # the retired ones exited and were reaped
    # A stop signal to the process group reaches the workers too: the server handles it, they carry on.
    (worker,) = pool.ready_pids()
    replaced = pool.replaced
    os.kill(worker, signal.SIGTERM)
    os.kill(worker, signal.SIGINT)
    settle(1.5)  # longer than the supervisor needs to notice an exit
    assert pool.ready_pids() == [worker] and pool.replaced == replaced


def test_a_killed_worker_is_replaced_and_the_other_keeps_answering(
    make_pool: Callable[..., AnswerProcesses], fake_slack: FakeSlack
) -> None:
    pool = make_pool(processes=2, threads=2, max_answers=0)
    pids = wait_until(lambda: len(pool.ready_pids()) == 2 and pool.ready_pids(), timeout=2 * START_S)
    # Both idle: with one shared multiprocessing.Queue, one of them would be blocked in get() holding the
    # queue's lock, and killing it would stall the other for good. Kill each in turn.
    os.kill(pids[0], signal.SIGKILL)
    jobs = [job(n) for n in range(3)]
    for j in jobs:
        pool.submit(j)
    wait_until(lambda: answered_once(fake_slack, jobs), timeout=START_S)
    survivor = pids[1]
    wait_until(lambda: len(pool.ready_pids()) == 2, timeout=2 * START_S)  # the replacement is up
    assert pids[0] not in pool.ready_pids() and survivor in pool.ready_pids()
    os.kill(survivor, signal.SIGKILL)
    more = [job(n) for n in range(3, 6)]
    for j in more:
        pool.submit(j)
    wait_until(lambda: answered_once(fake_slack, more), timeout=START_S)
    wait_until(lambda: len(pool.ready_pids()) == 2, timeout=2 * START_S)
    assert pool.replaced == 2
    assert answered_once(fake_slack, jobs + more)


def apologies(fake: FakeSlack, thread_ts: str) -> list[str]:
    return [
        c["text"]
        for c in fake.calls_to("chat.postMessage")
        if c.get("thread_ts") == thread_ts and "couldn't answer" in c.get("text", "")
    ]


def test_an_answer_lost_with_its_worker_gets_the_apology(
    make_pool: Callable[..., AnswerProcesses], bot_settings: Settings, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    """A worker killed in the middle of an answer (here: waiting on a slow model) cannot apologise; the server
    does, in that thread, once, and the replacement answers the next question."""
    add_document(bot_settings, uri="https://wiki.example.com/deploy", title="Deploying",
                 sections=[("Deploy", "Production deploys run with `make deploy` from the main branch.")])  # fmt: skip
    settings = bot_settings.model_copy(
        update={"openai_base_url": fake_openai.url, "chat_model": "fake-model", "openai_api_key": SecretStr("sk-t"),
                "llm_timeout_s": 300.0}
    )  # fmt: skip
    pool = make_pool(settings, processes=1, threads=2, max_answers=0)
    (pid,) = wait_until(lambda: pool.ready_pids(), timeout=START_S)
    fake_openai.delay(300.0)  # the model never answers while the test runs
    lost = AnswerJob("how do I deploy to production?", "C0POOL", "1700000100.000100", "U0ASKER", "T0TEAM")
    pool.submit(lost)
    # The worker is inside the answer, waiting on the model. Its first answer took over a minute to reach the model
    # once, with the suite on two processes and an ingest sharing the two cores.
    wait_until(lambda: fake_openai.requests, timeout=180)
    os.kill(pid, signal.SIGKILL)
    (text,) = wait_until(lambda: apologies(fake_slack, lost.thread_ts), timeout=30)
    assert "reference `" in text
    fake_openai.reply("Run `make deploy` from main [1].")
    after = AnswerJob("and how do I deploy?", "C0POOL", "1700000101.000100", "U0ASKER", "T0TEAM")
    pool.submit(after)
    wait_until(lambda: thread_posts(fake_slack, after.thread_ts), timeout=2 * START_S)
    settle(1.0)
    assert len(apologies(fake_slack, lost.thread_ts)) == 1 and not apologies(fake_slack, after.thread_ts)


def test_questions_still_waiting_when_the_server_stops_get_the_apology(
    make_pool: Callable[..., AnswerProcesses], fake_slack: FakeSlack
) -> None:
    pool = make_pool(processes=1, threads=2, max_answers=0)
    jobs = [job(n) for n in range(200, 203)]
    for j in jobs:
        pool.submit(j)
    assert not pool.ready_pids()  # still loading its model: nothing was handed out
    pool.close(5.0)
    for j in jobs:
        assert len(apologies(fake_slack, j.thread_ts)) == 1
        assert len(thread_posts(fake_slack, j.thread_ts)) == 1
