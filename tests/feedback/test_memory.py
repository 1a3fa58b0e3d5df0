"""The feedback memory CTE: votes on similar past questions move their sources; unrelated questions untouched."""

from __future__ import annotations

import psycopg

from lore.config import Settings
from lore.db import database_url, register_vectors
from lore.feedback import record_critique, record_vote
from lore.feedback_memory import feedback_index
from tests.feedback.helpers import add_answer, add_doc, embed


def _adjustments(settings: Settings, question: str) -> dict[int, float]:
    """The feedback memory's adjustment of every chunk of each document it moves, for a question."""
    qvec = embed(settings, [question])[0]
    with psycopg.connect(database_url(settings), autocommit=True) as conn:
        register_vectors(conn)
        docs, adj = feedback_index(settings, conn).adjustments(settings, qvec)
        rows = conn.execute(
            "SELECT c.id, f.adj FROM unnest(%s::bigint[], %s::float8[]) AS f(document_id, adj)"
            " JOIN chunks c ON c.document_id = f.document_id",
            (docs, adj),
        ).fetchall()
    return {int(c): float(a) for c, a in rows}


def test_votes_move_sources_of_similar_questions_only(db: Settings) -> None:
    deploy = add_doc(
        db, uri="kb://deploy", title="Deploy", texts=["Deploy with make ship.", "Rollback with make undo."]
    )
    vpn = add_doc(db, uri="kb://vpn", title="VPN", texts=["Connect to the VPN with the corp profile."])
    wiki = add_doc(db, uri="kb://wiki", title="Old wiki", texts=["Deploys used to be done by hand."])
    up = add_answer(db, question="How do I deploy the service to production?", chunk_ids=[deploy[0], wiki[0]])
    down = add_answer(db, question="How do I deploy the service to production?", chunk_ids=[wiki[0], vpn[0]])
    record_vote(db, answer_id=up, user_id="U1", value=1, via="button")
    record_vote(db, answer_id=down, user_id="U2", value=-1, via="button")

    adj = _adjustments(db, "What is the way to deploy our service to prod?")
    bound = db.feedback_weight
    assert set(deploy) <= set(adj) and adj[deploy[0]] == adj[deploy[1]] > 0  # the whole upvoted document
    assert adj[wiki[0]] < 0 < adj[deploy[0]]
    assert all(abs(v) <= bound for v in adj.values())

    assert _adjustments(db, "Which cafeteria serves vegetarian lunch on Fridays?") == {}


def test_more_agreeing_votes_weigh_more_and_corrections_are_strong(db: Settings) -> None:
    deploy = add_doc(db, uri="kb://deploy", title="Deploy", texts=["Deploy with make ship."])
    runbook = add_doc(db, uri="kb://runbook", title="Runbook", texts=["The release runbook."])
    a = add_answer(db, question="How do I deploy the service?", chunk_ids=[deploy[0]])
    record_vote(db, answer_id=a, user_id="U1", value=1, via="button")
    one = _adjustments(db, "How can I deploy the service?")[deploy[0]]
    for user in ("U2", "U3", "U4"):
        record_vote(db, answer_id=a, user_id=user, value=1, via="button")
    four = _adjustments(db, "How can I deploy the service?")[deploy[0]]
    assert 0 < one < four <= db.feedback_weight

    record_critique(db, answer_id=a, user_id="U5", critique="see the runbook", correction="Follow kb://runbook")
    corrected = _adjustments(db, "How can I deploy the service?")
    assert corrected[runbook[0]] > one
