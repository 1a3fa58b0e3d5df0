"""Searches skip the feedback term while no feedback exists, and include it once a vote is recorded."""

from __future__ import annotations

import psycopg

from lore import feedback_memory
from lore.config import Settings
from lore.db import database_url
from lore.feedback import record_vote
from tests.feedback.helpers import add_answer, add_doc, rand_vec


def test_feedback_presence_is_detected_and_remembered(db: Settings) -> None:
    feedback_memory._seen.clear()
    chunks = add_doc(db, uri="kb://deploy", title="Deploy", texts=["Deploy with make ship."])
    answer_id = add_answer(db, question="how to deploy?", chunk_ids=chunks, embedding=rand_vec(1))
    with psycopg.connect(database_url(db), autocommit=True) as conn:
        assert feedback_memory.feedback_present(db, conn) is False
        # Recorded by another process (its vote and the evidence it derives): not seen until the recheck.
        with conn.transaction():
            conn.execute("INSERT INTO votes (answer_id, user_id, value) VALUES (%s, 'U9', 1)", (answer_id,))
            feedback_memory.refresh_evidence(conn, [answer_id])
        assert feedback_memory.feedback_present(db, conn) is False
        feedback_memory._seen[feedback_memory._key(db)] -= feedback_memory.ABSENT_RECHECK_S + 1
        assert feedback_memory.feedback_present(db, conn) is True
        with conn.transaction():
            conn.execute("DELETE FROM votes")
            feedback_memory.refresh_evidence(conn, [answer_id])
        assert conn.execute("SELECT count(*) FROM feedback_answers").fetchone() == (0,)
        feedback_memory._seen.clear()
        assert feedback_memory.feedback_present(db, conn) is False
        # Recorded in this process: seen at once.
        record_vote(db, answer_id=answer_id, user_id="U1", value=1, via="cli")
        assert feedback_memory.feedback_present(db, conn) is True


def test_evidence_follows_votes_corrections_and_deletions(db: Settings) -> None:
    deploy = add_doc(db, uri="kb://deploy", title="Deploy", texts=["Deploy with make ship.", "Rollback."])
    wiki = add_doc(db, uri="kb://wiki", title="Wiki", texts=["Old notes."])
    a = add_answer(
        db, question="how to deploy?", chunk_ids=[wiki[0], deploy[1]], embedding=rand_vec(2), message_ts="77.1"
    )

    def evidence() -> dict[int, float]:
        with psycopg.connect(database_url(db)) as conn:
            rows = conn.execute(
                "SELECT d.id, round(e.w::numeric, 4) FROM feedback_evidence e JOIN documents d ON d.id = e.document_id"
                " WHERE e.answer_id = %s",
                (a,),
            ).fetchall()
        return {int(d): float(w) for d, w in rows}

    wiki_doc, deploy_doc = _doc_of(db, wiki[0]), _doc_of(db, deploy[0])
    record_vote(db, answer_id=a, user_id="U1", value=1, via="button")
    zz = feedback_memory.WILSON_Z**2
    # score 1/(1+z^2), divided by the rank of the document's best chunk in the answer's context.
    assert evidence() == {wiki_doc: round(1 / (1 + zz), 4), deploy_doc: round(1 / (1 + zz) / 2, 4)}
    record_vote(db, answer_id=a, user_id="U2", value=-1, via="button")
    assert evidence() == {}  # mixed votes cancel
    from lore.feedback import forget_message, record_critique

    record_critique(db, answer_id=a, user_id="U3", critique="wrong doc", correction="See kb://deploy instead")
    assert evidence() == {deploy_doc: feedback_memory.CORRECTION_SCORE}
    # The answer's Slack message is deleted: the answer goes, and its evidence with it.
    assert forget_message(db, channel_id="C1", message_ts="77.1") == 1
    assert evidence() == {}


def _doc_of(settings: Settings, chunk_id: int) -> int:
    with psycopg.connect(database_url(settings)) as conn:
        return int(conn.execute("SELECT document_id FROM chunks WHERE id = %s", (chunk_id,)).fetchone()[0])
