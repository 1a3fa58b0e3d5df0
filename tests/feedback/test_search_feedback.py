"""Feedback changes retrieval through hybrid_search: a voted question's rephrasing ranks the upvoted source
higher; an unrelated question's ranking is unchanged."""

from __future__ import annotations

from harness.kb import add_document
from lore.config import Settings
from lore.feedback import record_critique, record_vote
from lore.search import hybrid_search
from tests.feedback.helpers import add_answer

DOCS = {
    "kb://deploy-legacy": (
        "Deploying (legacy)",
        "To deploy the service to production, copy the build to the server "
        "with scp and restart it. This page describes the old deployment process.",
    ),
    "kb://release": (
        "Release process",
        "Releases go out with make ship, which builds, tests and rolls the service out to production in stages.",
    ),
    "kb://vpn": ("VPN", "Connect to the corporate VPN with the WireGuard profile from the IT portal."),
    "kb://expenses": ("Expenses", "Submit expenses in Expensify within 30 days; your manager approves them."),
    "kb://oncall": ("On-call", "The on-call rotation is managed in PagerDuty; swaps go in the #oncall channel."),
    "kb://laptops": ("Laptops", "Request a new laptop with the IT hardware form; delivery takes a week."),
}


def _uris(settings: Settings, query: str, *, use_feedback: bool = True) -> list[str]:
    hits = hybrid_search(settings, query, k=6, use_feedback=use_feedback)
    seen: list[str] = []
    for hit in hits:
        if hit.uri not in seen:
            seen.append(hit.uri)
    return seen


def _seed(settings: Settings) -> str:
    for uri, (title, text) in DOCS.items():
        add_document(settings, uri=uri, title=title, sections=[("", text)])
    question = "How do I deploy the service to production?"
    before = _uris(settings, question)
    assert before.index("kb://deploy-legacy") < before.index("kb://release"), before
    return question


def test_votes_lift_the_upvoted_source_for_a_rephrasing(db: Settings) -> None:
    question = _seed(db)
    rephrasing = "What's the process to get our service deployed in production?"
    unrelated = "How do I connect to the VPN from home?"
    baseline_rephrasing = _uris(db, rephrasing)
    assert baseline_rephrasing.index("kb://deploy-legacy") < baseline_rephrasing.index("kb://release")
    baseline_unrelated = hybrid_search(db, unrelated, k=6)

    hits = hybrid_search(db, question, k=6)
    first = add_answer(
        db, question=question, answer="scp the build [1]", chunk_ids=[h.chunk_id for h in hits], message_ts="1.1"
    )
    release_first = sorted(hits, key=lambda h: h.uri != "kb://release")
    second = add_answer(
        db,
        question=question,
        answer="make ship [1]",
        chunk_ids=[h.chunk_id for h in release_first],
        message_ts="1.2",
        parent_id=first,
    )
    record_vote(db, answer_id=first, user_id="U1", value=-1, via="reaction")
    record_vote(db, answer_id=second, user_id="U1", value=1, via="reaction")
    record_vote(db, answer_id=second, user_id="U2", value=1, via="button")

    after = _uris(db, rephrasing)
    assert after.index("kb://release") < after.index("kb://deploy-legacy"), after
    assert _uris(db, rephrasing, use_feedback=False) == baseline_rephrasing  # the term, and only it, changed things
    unchanged = hybrid_search(db, unrelated, k=6)
    assert [(h.chunk_id, h.score) for h in unchanged] == [(h.chunk_id, h.score) for h in baseline_unrelated]


def test_a_correction_naming_a_source_lifts_it(db: Settings) -> None:
    question = _seed(db)
    hits = hybrid_search(db, question, k=6)
    answer = add_answer(
        db, question=question, answer="scp the build [1]", chunk_ids=[h.chunk_id for h in hits], message_ts="2.1"
    )
    record_critique(
        db,
        answer_id=answer,
        user_id="U1",
        critique="that page is outdated",
        correction="We use make ship now, see kb://release",
    )
    after = _uris(db, "How can I deploy our service to production?")
    assert after[0] == "kb://release", after
