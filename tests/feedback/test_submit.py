"""submit_feedback: through the real broker and Celery worker, and straight to PostgreSQL when Redis is down."""

from __future__ import annotations

import time

from bot.worker_client import submit_feedback
from harness.polling import wait_until
from lore.config import Settings
from lore.db import raw_connection
from tests.feedback.helpers import add_answer, rand_vec, votes


def test_reactions_go_through_celery_into_postgresql(celery_worker: object, db: Settings) -> None:
    """The bot cannot reach the database (its write-through fails): only the worker can record what arrives."""
    a = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="10.1")
    b = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="10.2", parent_id=a)
    bot = db.model_copy(update={"database_url": "postgresql://lore@127.0.0.1:9/none"})
    base = {"channel_id": "C1", "message_ts": "10.1"}
    submit_feedback(bot, "record_reaction", **base, user_id="U1", reaction="+1", added=True, event_ts="11.0")
    submit_feedback(bot, "workers.tasks.record_reaction", **base, user_id="U2", reaction="-1", added=True)
    submit_feedback(bot, "record_vote", answer_id=b, user_id="U3", value=1, via="button")
    submit_feedback(bot, "record_comparison", chosen_id=b, rejected_id=a, user_id="U3")
    submit_feedback(bot, "record_critique", answer_id=a, user_id="U2", critique="wrong version", correction=None)
    wait_until(
        lambda: len(votes(db)) == 3 and _count(db, "comparisons") == 1 and _count(db, "critiques") == 1,
        timeout=30,
        what="the worker",
    )
    assert votes(db) == {(a, "U1"): 1, (a, "U2"): -1, (b, "U3"): 1}


def _count(settings: Settings, table: str) -> int:
    with raw_connection(settings) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_dead_broker_records_directly_in_postgresql(db: Settings) -> None:
    dead = db.model_copy(update={"redis_url": "redis://127.0.0.1:9/0", "feedback_broker_timeout_s": 0.5})
    a = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="20.1")
    started = time.monotonic()
    submit_feedback(
        dead, "record_reaction", channel_id="C1", message_ts="20.1", user_id="U1", reaction="+1", added=True
    )
    submit_feedback(dead, "record_vote", answer_id=a, user_id="U2", value=-1, via="button")
    assert time.monotonic() - started < 5
    assert votes(db) == {(a, "U1"): 1, (a, "U2"): -1}


def test_group_commit_writes_concurrent_votes_in_batches(db: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from lore import feedback
    from workers.feedback_tasks import GroupCommit

    answers = [
        add_answer(db, embedding=rand_vec(0), question=f"q{i}", channel_id="C1", message_ts=f"30.{i}") for i in range(5)
    ]
    batcher = GroupCommit()

    def vote(n: int) -> object:
        if n == 7:  # an unknown answer inside a batch fails alone
            kwargs = {"answer_id": 999999, "user_id": "U", "value": 1, "via": "button", "event_ts": "1.0"}
            try:
                return batcher.record("record_vote", feedback.record_vote, kwargs)
            except feedback.FeedbackError as exc:
                return exc
        kwargs = {
            "channel_id": "C1",
            "message_ts": f"30.{n % 5}",
            "user_id": f"U{n}",
            "reaction": "+1" if n % 2 else "-1",
            "added": True,
            "event_ts": f"40.{n:03d}",
        }
        return batcher.record("record_reaction", feedback.record_reaction, kwargs)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(vote, range(60)))
    assert isinstance(results[7], feedback.FeedbackError)
    assert all(r is True for n, r in enumerate(results) if n != 7)
    expected = {(answers[n % 5], f"U{n}"): 1 if n % 2 else -1 for n in range(60) if n != 7}
    assert votes(db) == expected
