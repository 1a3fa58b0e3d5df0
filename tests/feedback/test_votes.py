"""Votes: one per answer and user, latest wins, clear, reactions, ordering under retries and redelivery."""

from __future__ import annotations

import pytest

from lore.config import Settings
from lore.db import raw_connection
from lore.feedback import (
    FeedbackError,
    forget_message,
    record_comparison,
    record_critique,
    record_reaction,
    record_vote,
)
from tests.feedback.helpers import add_answer, add_doc, rand_vec, votes


def test_one_vote_per_user_latest_wins_and_clear(db: Settings) -> None:
    a = add_answer(db, embedding=rand_vec(0), question="How do I deploy?", message_ts="100.1")
    record_vote(db, answer_id=a, user_id="U1", value=1, via="button", event_ts="200.000001")
    record_vote(db, answer_id=a, user_id="U2", value=-1, via="button", event_ts="200.000002")
    record_vote(db, answer_id=a, user_id="U1", value=-1, via="button", event_ts="200.000003")
    assert votes(db) == {(a, "U1"): -1, (a, "U2"): -1}
    record_vote(db, answer_id=a, user_id="U1", value=0, via="button", event_ts="200.000004")
    assert votes(db) == {(a, "U2"): -1}


def test_redelivered_old_clear_does_not_undo_a_newer_up(db: Settings) -> None:
    a = add_answer(db, embedding=rand_vec(0), question="q", message_ts="100.1")
    record_vote(db, answer_id=a, user_id="U1", value=1, via="reaction", event_ts="300.5")
    record_vote(db, answer_id=a, user_id="U1", value=0, via="reaction", event_ts="300.4")  # late redelivery
    assert votes(db) == {(a, "U1"): 1}
    # The same event twice changes nothing; a clear arriving before the add it follows still wins.
    record_vote(db, answer_id=a, user_id="U2", value=0, via="reaction", event_ts="400.2")
    record_vote(db, answer_id=a, user_id="U2", value=1, via="reaction", event_ts="400.1")
    record_vote(db, answer_id=a, user_id="U2", value=1, via="reaction", event_ts="400.1")
    assert votes(db) == {(a, "U1"): 1}


def test_reactions_map_to_votes_and_removal_withdraws_only_that_kind(db: Settings) -> None:
    a = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="500.1")
    kw = {"channel_id": "C1", "message_ts": "500.1", "user_id": "U1"}
    assert record_reaction(db, **kw, reaction="+1", added=True, event_ts="501.0") is True
    assert votes(db) == {(a, "U1"): 1}
    assert record_reaction(db, **kw, reaction="thumbsdown", added=True, event_ts="502.0") is True
    assert votes(db) == {(a, "U1"): -1}
    # Removing the thumbs-up the user had also left keeps the newer thumbs-down.
    assert record_reaction(db, **kw, reaction="+1", added=False, event_ts="503.0") is True
    assert votes(db) == {(a, "U1"): -1}
    assert record_reaction(db, **kw, reaction="-1::skin-tone-3", added=False, event_ts="504.0") is True
    assert votes(db) == {}


def test_switching_back_falls_back_to_the_reaction_still_present(db: Settings) -> None:
    a = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="500.1")
    kw = {"channel_id": "C1", "message_ts": "500.1", "user_id": "U1"}
    record_reaction(db, **kw, reaction="thumbsup", added=True, event_ts="1.0")
    record_reaction(db, **kw, reaction="thumbsdown", added=True, event_ts="2.0")
    record_reaction(db, **kw, reaction="thumbsdown", added=False, event_ts="3.0")
    assert votes(db) == {(a, "U1"): 1}


def test_ignored_reactions(db: Settings) -> None:
    add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="600.1")
    assert record_reaction(db, channel_id="C1", message_ts="600.2", user_id="U1", reaction="+1", added=True) is False
    assert record_reaction(db, channel_id="C1", message_ts="600.1", user_id="U1", reaction="tada", added=True) is False
    assert (
        record_reaction(db, channel_id="C1", message_ts="600.1", user_id="UBOT", reaction="+1", added=True, is_bot=True)
        is False
    )
    assert votes(db) == {}


def test_configured_reactions(db: Settings) -> None:
    custom = db.model_copy(update={"up_reactions": "white_check_mark", "down_reactions": "x"})
    a = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="700.1")
    base = {"channel_id": "C1", "message_ts": "700.1", "added": True}
    assert record_reaction(custom, **base, user_id="U1", reaction="+1") is False
    assert record_reaction(custom, **base, user_id="U1", reaction="white_check_mark") is True
    assert record_reaction(custom, **base, user_id="U2", reaction="x") is True
    assert votes(db) == {(a, "U1"): 1, (a, "U2"): -1}


def test_opt_out_channels_collect_nothing(db: Settings) -> None:
    by_env = db.model_copy(update={"opt_out_channels": "CQUIET"})
    a = add_answer(db, embedding=rand_vec(0), question="q", channel_id="CQUIET", message_ts="800.1")
    b = add_answer(db, embedding=rand_vec(0), question="q2", channel_id="CSET", message_ts="800.2")
    c = add_answer(db, embedding=rand_vec(0), question="q3", channel_id="C1", message_ts="800.3")
    with raw_connection(db) as conn:
        conn.execute("INSERT INTO channel_settings (channel_id, feedback_opt_out) VALUES ('CSET', true)")
    assert (
        record_reaction(by_env, channel_id="CQUIET", message_ts="800.1", user_id="U1", reaction="+1", added=True)
        is False
    )
    record_vote(by_env, answer_id=b, user_id="U1", value=1, via="button")
    record_comparison(by_env, chosen_id=b, rejected_id=c, user_id="U1")
    record_critique(by_env, answer_id=a, user_id="U1", critique="wrong", correction="x")
    record_vote(by_env, answer_id=c, user_id="U1", value=1, via="button")
    assert votes(db) == {(c, "U1"): 1}
    with raw_connection(db) as conn:
        assert conn.execute("SELECT count(*) FROM comparisons").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM critiques").fetchone()[0] == 0


def test_bad_votes_are_refused_with_a_clear_error(db: Settings) -> None:
    a = add_answer(db, embedding=rand_vec(0), question="q", message_ts="900.1")
    with pytest.raises(FeedbackError, match="answer 12345 does not exist"):
        record_vote(db, answer_id=12345, user_id="U1", value=1, via="cli")
    with pytest.raises(FeedbackError, match="1, -1 or 0"):
        record_vote(db, answer_id=a, user_id="U1", value=2, via="cli")
    with pytest.raises(FeedbackError, match="event_ts"):
        record_vote(db, answer_id=a, user_id="U1", value=1, via="cli", event_ts="yesterday")


def test_comparison_latest_choice_wins(db: Settings) -> None:
    a = add_answer(db, embedding=rand_vec(0), question="q", message_ts="1.1")
    b = add_answer(db, embedding=rand_vec(0), question="q", message_ts="1.2", parent_id=a)
    record_comparison(db, chosen_id=a, rejected_id=b, user_id="U1")
    record_comparison(db, chosen_id=a, rejected_id=b, user_id="U1")
    record_comparison(db, chosen_id=b, rejected_id=a, user_id="U1")
    with raw_connection(db) as conn:
        rows = conn.execute("SELECT chosen_id, rejected_id FROM comparisons").fetchall()
    assert rows == [(b, a)]


def test_critique_finds_the_source_its_correction_names(db: Settings) -> None:
    add_doc(db, uri="https://docs.example.com/deploy", title="Deploy", texts=["Deploy with make ship."])
    a = add_answer(db, embedding=rand_vec(0), question="How do I deploy?", message_ts="2.1")
    record_critique(
        db,
        answer_id=a,
        user_id="U1",
        critique="outdated",
        correction="Use make ship, see https://docs.example.com/deploy",
    )
    record_critique(
        db, answer_id=a, user_id="U1", critique="outdated!", correction="make ship (https://docs.example.com/deploy)"
    )
    with raw_connection(db) as conn:
        rows = conn.execute("SELECT critique, correction, source_uri FROM critiques").fetchall()
    assert rows == [("outdated!", "make ship (https://docs.example.com/deploy)", "https://docs.example.com/deploy")]


def test_forget_message_deletes_the_answer_and_its_feedback(db: Settings) -> None:
    a = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="3.1")
    b = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="3.2", parent_id=a)
    record_vote(db, answer_id=a, user_id="U1", value=1, via="button")
    record_comparison(db, chosen_id=b, rejected_id=a, user_id="U1")
    record_critique(db, answer_id=a, user_id="U1", critique="meh", correction=None)
    assert forget_message(db, channel_id="C1", message_ts="3.1") == 1
    assert forget_message(db, channel_id="C1", message_ts="3.1") == 0
    with raw_connection(db) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM answers), (SELECT count(*) FROM votes), (SELECT count(*) FROM vote_marks),"
            " (SELECT count(*) FROM comparisons), (SELECT count(*) FROM critiques)"
        ).fetchone()
    assert counts == (1, 0, 0, 0, 0)


def test_deleting_the_question_forgets_its_answers(db: Settings) -> None:
    a = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="5.2", thread_ts="5.1")
    keep = add_answer(db, embedding=rand_vec(0), question="q2", channel_id="C2", message_ts="5.1")
    with raw_connection(db) as conn:
        conn.execute('UPDATE answers SET generation = \'{"question_ts": "5.1"}\'::jsonb WHERE id = %s', (a,))
    assert forget_message(db, channel_id="C1", message_ts="5.1") == 1
    with raw_connection(db) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM answers").fetchall()] == [keep]
