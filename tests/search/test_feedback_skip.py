"""Searches skip the feedback term while no feedback exists, and include it once a vote is recorded."""

from __future__ import annotations

import psycopg

from lore import feedback_memory
from lore.config import Settings
from lore.db import database_url
from lore.feedback import record_vote


def test_feedback_presence_is_detected_and_remembered(db: Settings) -> None:
    feedback_memory._seen.clear()
    with psycopg.connect(database_url(db), autocommit=True) as conn:
        assert feedback_memory.feedback_present(db, conn) is False
        answer_id = conn.execute(
            "INSERT INTO answers (question, answer, model) VALUES ('q', 'a', 'm') RETURNING id"
        ).fetchone()[0]
        # Recorded by another process: not seen until the recheck interval passes.
        conn.execute("INSERT INTO votes (answer_id, user_id, value) VALUES (%s, 'U9', 1)", (answer_id,))
        assert feedback_memory.feedback_present(db, conn) is False
        feedback_memory._seen[feedback_memory._key(db)] -= feedback_memory.ABSENT_RECHECK_S + 1
        assert feedback_memory.feedback_present(db, conn) is True
        conn.execute("TRUNCATE votes")
        feedback_memory._seen.clear()
        assert feedback_memory.feedback_present(db, conn) is False
        # Recorded in this process: seen at once.
        record_vote(db, answer_id=answer_id, user_id="U1", value=1, via="cli")
        assert feedback_memory.feedback_present(db, conn) is True
