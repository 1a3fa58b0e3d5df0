"""The answer processes of `lore serve` (bot/pool.py): real spawned workers answering in search-only mode
through the fake Slack, replaced when they retire or die."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import pytest

from bot.jobs_answer import AnswerJob
from bot.pool import AnswerProcesses
from lore.config import Settings
from tests.bot.conftest import eventually, settle, thread_posts
from tests.fakes.slack_api import FakeSlack

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

    def make(**kwargs: int) -> AnswerProcesses:
        pool = AnswerProcesses(bot_settings, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close(10.0)


def test_workers_retire_after_their_budget_and_every_question_is_answered_once(
    make_pool: Callable[..., AnswerProcesses], fake_slack: FakeSlack
) -> None:
    pool = make_pool(processes=1, threads=2, max_answers=2)
    first = eventually(lambda: pool.ready_pids(), timeout=START_S)
    jobs = [job(n) for n in range(5)]
    for j in jobs:
        pool.submit(j)
    eventually(lambda: answered_once(fake_slack, jobs), timeout=3 * START_S)
    settle(1.0)
    assert answered_once(fake_slack, jobs)
    # 5 jobs at 2 per worker: the first and second workers retired, a third took the last job.
    assert pool.replaced >= 2
    assert pool.ready_pids() and pool.ready_pids() != first
    eventually(lambda: len(pool.workers) == 1, timeout=30)  # the retired ones exited and were reaped
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
    pids = eventually(lambda: len(pool.ready_pids()) == 2 and pool.ready_pids(), timeout=2 * START_S)
    # Both idle: with one shared multiprocessing.Queue, one of them would be blocked in get() holding the
    # queue's lock, and killing it would stall the other for good. Kill each in turn.
    os.kill(pids[0], signal.SIGKILL)
    jobs = [job(n) for n in range(3)]
    for j in jobs:
        pool.submit(j)
    eventually(lambda: answered_once(fake_slack, jobs), timeout=START_S)
    survivor = pids[1]
    eventually(lambda: len(pool.ready_pids()) == 2, timeout=2 * START_S)  # the replacement is up
    assert pids[0] not in pool.ready_pids() and survivor in pool.ready_pids()
    os.kill(survivor, signal.SIGKILL)
    more = [job(n) for n in range(3, 6)]
    for j in more:
        pool.submit(j)
    eventually(lambda: answered_once(fake_slack, more), timeout=START_S)
    eventually(lambda: len(pool.ready_pids()) == 2, timeout=2 * START_S)
    assert pool.replaced == 2
    assert answered_once(fake_slack, jobs + more)
