"""Batched vote recording: the same result as one event at a time, in any split and order, and never lost."""

from __future__ import annotations

import random

from bot.worker_client import VoteBatcher
from harness.polling import wait_until
from lore import feedback
from lore.config import Settings
from lore.db import raw_connection
from tests.feedback.helpers import add_answer, rand_vec, votes


def _events(answers: dict[str, int], rng: random.Random, n: int) -> list[dict[str, object]]:
    """Random reactions and button votes of 6 users on 3 answers, each with its own increasing event time."""
    events: list[dict[str, object]] = []
    for i in range(n):
        user = f"U{rng.randrange(6)}"
        ts_key = rng.choice(sorted(answers))
        event_ts = f"{1000 + i}.000100"
        if rng.random() < 0.7:
            events.append(
                {
                    "kind": "reaction",
                    "channel_id": "C1",
                    "message_ts": ts_key,
                    "user_id": user,
                    "reaction": rng.choice(["+1", "-1", "thumbsup", "eyes"]),
                    "added": rng.random() < 0.6,
                    "event_ts": event_ts,
                }
            )
        else:
            events.append(
                {
                    "kind": "vote",
                    "answer_id": answers[ts_key],
                    "user_id": user,
                    "value": rng.choice([1, -1, 0]),
                    "via": "button",
                    "event_ts": event_ts,
                }
            )
    return events


def _one_by_one(settings: Settings, events: list[dict[str, object]]) -> None:
    for event in events:
        fields = {k: v for k, v in event.items() if k != "kind"}
        if event["kind"] == "reaction":
            feedback.record_reaction(settings, **fields)  # type: ignore[arg-type]
        else:
            feedback.record_vote(settings, **fields)  # type: ignore[arg-type]


def _clear_votes(settings: Settings) -> None:
    with raw_connection(settings) as conn:
        conn.execute("DELETE FROM votes")
        conn.execute("DELETE FROM vote_marks")


def test_a_batch_in_any_split_and_order_ends_as_one_by_one(db: Settings) -> None:
    answers = {
        ts: add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts=ts)
        for ts in ("50.1", "50.2", "50.3")
    }
    rng = random.Random(3)
    events = _events(answers, rng, 300)
    _one_by_one(db, events)
    expected = votes(db)
    assert expected and set(expected.values()) == {1, -1}  # the script exercises both kinds of vote

    for trial in range(3):
        _clear_votes(db)
        shuffled = events[:]
        rng.shuffle(shuffled)  # Slack and parallel workers deliver out of order; the event time decides
        cuts = sorted(rng.sample(range(1, len(shuffled)), 4))
        for start, end in zip([0, *cuts], [*cuts, len(shuffled)], strict=True):
            with raw_connection(db) as conn:
                feedback.record_vote_events(db, shuffled[start:end], conn=conn)
        assert votes(db) == expected, f"trial {trial}"

    # A redelivered batch (the worker re-applying what the bot wrote through) changes nothing.
    with raw_connection(db) as conn:
        feedback.record_vote_events(db, events[:150], conn=conn)
    assert votes(db) == expected


def test_bad_events_are_skipped_alone(db: Settings) -> None:
    a = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="60.1")
    good = {"kind": "vote", "answer_id": a, "user_id": "U1", "value": 1, "via": "button", "event_ts": "1.0"}
    bad = [
        {"kind": "vote", "answer_id": 999999, "user_id": "U2", "value": 1, "via": "button"},
        {"kind": "vote", "answer_id": a, "user_id": "U3", "value": 7, "via": "button"},
        {"kind": "vote", "answer_id": a, "user_id": "U4", "value": 1, "via": "carrier pigeon"},
        {"kind": "vote", "answer_id": a, "user_id": "", "value": 1, "via": "button"},
        {
            "kind": "reaction",
            "channel_id": "C1",
            "message_ts": "60.1",
            "user_id": "U5",
            "reaction": "+1",
            "added": True,
            "event_ts": "not a time",
        },
        {
            "kind": "reaction",
            "channel_id": "C1",
            "message_ts": "99.9",
            "user_id": "U6",
            "reaction": "+1",
            "added": True,
        },
        {"kind": "shrug"},
    ]
    with raw_connection(db) as conn:
        applied = feedback.record_vote_events(db, [*bad, good], conn=conn)
    assert applied == 1
    assert votes(db) == {(a, "U1"): 1}


def test_batcher_writes_through_when_the_broker_is_down(db: Settings) -> None:
    dead_broker = db.model_copy(update={"redis_url": "redis://127.0.0.1:9/0", "feedback_broker_timeout_s": 0.5})
    a = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="70.1")
    batcher = VoteBatcher(dead_broker)
    for n in range(40):
        batcher.add("reaction", channel_id="C1", message_ts="70.1", user_id=f"U{n}", reaction="+1", added=True)
    batcher.add("vote", answer_id=a, user_id="U0", value=-1, via="button")  # stamped later: it wins for U0
    assert batcher.flush(20)
    assert votes(db) == {(a, f"U{n}"): (-1 if n == 0 else 1) for n in range(40)}
    assert 1 <= batcher.batches <= 41


def test_batcher_keeps_votes_while_database_and_broker_are_both_down(db: Settings) -> None:
    a = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="80.1")
    nowhere = db.model_copy(
        update={
            "database_url": "postgresql://lore@127.0.0.1:9/none",
            "redis_url": "redis://127.0.0.1:9/0",
            "feedback_broker_timeout_s": 0.2,
        }
    )
    batcher = VoteBatcher(nowhere, retry_max_s=0.5)
    batcher.add("vote", answer_id=a, user_id="U1", value=1, via="button")
    assert not batcher.flush(2), "nothing could take the vote, so it must still be pending"
    assert votes(db) == {}
    batcher.settings = db  # the database is back
    assert batcher.flush(20)
    assert votes(db) == {(a, "U1"): 1}


def test_batches_reach_the_worker(celery_worker: object, db: Settings) -> None:
    """The worker records what the bot sends: with the bot's write-through failing, it alone records."""
    a = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="90.1")
    # The bot cannot reach the database; the worker (its own settings) can.
    batcher = VoteBatcher(db.model_copy(update={"database_url": "postgresql://lore@127.0.0.1:9/none"}))
    for n in range(25):
        batcher.add("vote", answer_id=a, user_id=f"U{n}", value=1, via="button")
    assert batcher.flush(20)
    wait_until(lambda: len(votes(db)) >= 25, timeout=30, what="the worker")
    assert votes(db) == {(a, f"U{n}"): 1 for n in range(25)}
