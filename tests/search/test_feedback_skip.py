"""The feedback memory held by searching processes: reloaded when feedback changes, here or elsewhere."""

from __future__ import annotations

import psycopg
import pytest

from lore import feedback_memory, search
from lore.config import Settings
from lore.db import database_url
from lore.feedback import forget_message, record_critique, record_vote
from lore.search import ScoredHit, search_scored
from tests.feedback.helpers import add_answer, add_doc, embed, rand_vec


def test_the_index_follows_feedback_recorded_here_at_once_and_elsewhere_within_the_check_interval(
    db: Settings,
) -> None:
    feedback_memory._indexes.clear()
    chunks = add_doc(db, uri="kb://deploy", title="Deploy", texts=["Deploy with make ship."])
    # A second page: feedback moves a page at most as far as the query's candidates' scores spread (bound_for).
    add_doc(db, uri="kb://lunch", title="Lunch", texts=["The canteen serves lunch from noon."])
    qvec = embed(db, ["how do I deploy?"])[0]
    answer_id = add_answer(db, question="how do I deploy?", chunk_ids=chunks, embedding=qvec)
    with psycopg.connect(database_url(db), autocommit=True) as conn:
        index = feedback_memory.feedback_index(db, conn)
        assert index.adjustments(db, qvec) == ([], [])
        # Recorded by another process (its vote and the evidence it derives): seen after the check interval.
        with conn.transaction():
            conn.execute("INSERT INTO votes (answer_id, user_id, value) VALUES (%s, 'U9', 1)", (answer_id,))
            feedback_memory.refresh_evidence(conn, [answer_id])
        assert feedback_memory.feedback_index(db, conn).adjustments(db, qvec) == ([], [])
        index.checked_at -= feedback_memory.CHECK_INTERVAL_S + 1
        docs, adj = feedback_memory.feedback_index(db, conn).adjustments(db, qvec)
        assert len(docs) == 1 and 0 < adj[0] <= db.feedback_weight
        # Recorded in this process: seen by the next search, without waiting.
        record_vote(db, answer_id=answer_id, user_id="U1", value=-1, via="cli")
        record_vote(db, answer_id=answer_id, user_id="U2", value=-1, via="cli")
        docs, adj = feedback_memory.feedback_index(db, conn).adjustments(db, qvec)
        assert len(docs) == 1 and adj[0] < 0
    hits = search_scored(db, "how do I deploy?", mode="vector", k=3)
    deploy = [h for h in hits if h.hit.uri == "kb://deploy"]
    assert deploy and deploy[0].feedback < 0  # the search applies it


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
    # score 1/(1+z^2), for the answer's top source only (it cites nothing inline): not for the source below it.
    assert evidence() == {wiki_doc: round(1 / (1 + zz), 4)}
    record_vote(db, answer_id=a, user_id="U2", value=-1, via="button")
    assert evidence() == {}  # mixed votes cancel
    record_critique(db, answer_id=a, user_id="U3", critique="wrong doc", correction="See kb://deploy instead")
    assert evidence() == {deploy_doc: feedback_memory.CORRECTION_SCORE}
    # The answer's Slack message is deleted: the answer goes, and its evidence with it.
    assert forget_message(db, channel_id="C1", message_ts="77.1") == 1
    assert evidence() == {}


def _doc_of(settings: Settings, chunk_id: int) -> int:
    with psycopg.connect(database_url(settings)) as conn:
        return int(conn.execute("SELECT document_id FROM chunks WHERE id = %s", (chunk_id,)).fetchone()[0])


# Each document's best cosine to the query, as search passes it: the best (0.6), some close to it (feedback holds
# in part), some far below (feedback cannot move them).
QUERY_MATCHES = {0: 0.58, 3: 0.52, 4: 0.6, 11: 0.38, 17: 0.2, 29: 0.55, 99: 0.6}


@pytest.mark.parametrize("documents", [None, [0, 3, 4, 11, 17, 29, 99], QUERY_MATCHES])
def test_adjustments_sum_the_evidence_of_near_questions_weighted_by_similarity(
    db: Settings, documents: list[int] | dict[int, float] | None
) -> None:
    """The computation against the definition, on random questions and evidence: for the given documents (None:
    all), the nearest NEIGHBORS past questions with evidence about them that reach the threshold each hold with a
    chance (similarity ramp x tanh(GAIN x evidence)), combined as independent chances (1 - prod(1 - chance)), for
    and against apart; any evidence for a document vetoes the evidence against it, and what is left against it
    moves it by at most NEGATIVE_SHARE. Given each document's match to the query, evidence holds only as far as the
    query finds the document nearly as relevant as its best candidate (to nothing MATCH_MARGIN below it), a
    restraint that loosens as the past question nears the query, and not at all when a correction named the
    document."""
    import math

    import numpy as np

    rng = np.random.default_rng(4)
    centre = rng.standard_normal(384).astype(np.float32)
    rows = []
    for answer in range(120):  # more than NEIGHBORS, many of them near the query
        vec = centre + rng.standard_normal(384).astype(np.float32) * (0.5 if answer % 2 else 3.0)
        docs = sorted(rng.choice(30, int(rng.integers(1, 6)), replace=False).tolist())
        weights = [-abs(w) if doc >= 25 else w for doc, w in zip(docs, rng.normal(0, 0.3, len(docs)), strict=True)]
        named = [bool(w > 0.4) for w in weights]  # the strongest evidence for a page: as if a correction named it
        # 25-29: evidence against only; the documents each answer showed are not read without the guard
        rows.append((answer, (vec / np.linalg.norm(vec)).tolist(), docs, weights, named, []))
    index = feedback_memory.FeedbackIndex()
    index._load(rows)
    query = centre / np.linalg.norm(centre)
    got_docs, got_adj = index.adjustments(db, query, documents)

    threshold, bound = db.feedback_threshold, db.feedback_weight
    wanted = set(range(30)) if documents is None else set(documents)
    about = [i for i, r in enumerate(rows) if wanted & set(r[2])]
    sims = {i: float(np.dot(np.asarray(rows[i][1], dtype=np.float32), query)) for i in about}
    nearest = sorted(about, key=lambda i: -sims[i])[: feedback_memory.NEIGHBORS]
    assert len(about) > feedback_memory.NEIGHBORS, "the data must make the nearest-questions cut matter"
    gain, share = feedback_memory.GAIN, feedback_memory.NEGATIVE_SHARE
    plausible: dict[int, float] = {}  # given the documents' matches: 1 at the best match, 0 MATCH_MARGIN below
    if isinstance(documents, dict):
        best = max(documents.values())
        plausible = {d: min(1.0, max(0.0, 1 - (best - m) / feedback_memory.MATCH_MARGIN)) for d, m in documents.items()}
    support: dict[int, float] = {}  # the chance that no near question's evidence holds, per document
    against: dict[int, float] = {}
    for i in nearest:
        if sims[i] < threshold:
            continue
        for doc, w, named in zip(rows[i][2], rows[i][3], rows[i][4], strict=True):
            reach = 1.0 if named else plausible.get(doc, 1.0)
            if doc in wanted:
                doubts = support if w > 0 else against
                ramp = min(1.0, (sims[i] - threshold) / (feedback_memory.RAMP_TOP - threshold))
                # the restraint of a far-off match loosens as the past question nears the query
                chance = ramp * math.tanh(gain * abs(w)) * (ramp + (1 - ramp) * reach)
                doubts[doc] = doubts.get(doc, 1.0) * (1 - chance)
    assert support and set(against) - set(support), "the data must have evidence both ways, some of it vetoed"
    assert set(support) & set(against), "the data must have evidence both ways, some of it vetoed"
    assert got_docs == sorted(set(support) | set(against))
    expected = [bound * (1 - support[d]) if d in support else -share * bound * (1 - against[d]) for d in got_docs]
    assert np.allclose(got_adj, expected, atol=1e-6)
    if isinstance(documents, dict):  # the matches changed something: without them the figures differ
        assert index.adjustments(db, query, list(documents)) != (got_docs, got_adj)
        index._load([(*r[:4], [False] * len(r[4]), r[5]) for r in rows])  # and so did the corrections' exemption
        assert index.adjustments(db, query, documents) != (got_docs, got_adj)


@pytest.mark.parametrize("guard", [0, 1])
@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_search_adds_each_documents_feedback_adjustment_to_its_score_and_ranks_again(
    db: Settings, mode: str, guard: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adjustments of the candidates' documents are added in Python: the result must be exactly the
    candidates' scores without feedback plus the feedback memory's adjustment of their document, except that a
    lifted document stops just below the query's top document when no answer lifting it showed that one, if
    lore.feedback_memory.UNSEEN_GUARD is set (here each answer showed its own document only)."""
    monkeypatch.setattr(feedback_memory, "UNSEEN_GUARD", guard)
    services = ["billing", "search", "auth", "mail", "chat", "files", "jobs", "maps"]
    docs = [
        add_doc(
            db,
            uri=f"kb://svc{n}",
            title=f"Service {name}",
            texts=[f"Deploying the {name} service to production with the pipeline.", f"Paging policy of {name}."],
        )
        for n, name in enumerate(services)
    ]
    question = "How do I deploy the service to production?"
    qvec = embed(db, [question])[0]
    for n, chunks in enumerate(docs):  # votes that reorder the documents
        answer = add_answer(db, question=question, chunk_ids=chunks, embedding=qvec)
        record_vote(db, answer_id=answer, user_id="U1", value=1 if n % 3 == 0 else -1, via="button")
    # Every chunk (16) asked for, so that every chunk is a candidate: the documents' matches to the query, which
    # the memory is given, are then those computed below from all of them.
    got = search_scored(db, question, mode=mode, k=16, query_embedding=qvec)
    assert any(h.feedback > 0 for h in got) and any(h.feedback < 0 for h in got)

    base = search_scored(db, question, mode=mode, k=10, query_embedding=qvec, use_feedback=False)
    assert len(base) == 10 and all(h.feedback == 0 for h in base)
    everything = search_scored(db, question, mode=mode, k=50, query_embedding=qvec, use_feedback=False)
    assert len(everything) == 16  # every chunk is a candidate: the expected ranking below is complete
    matches: dict[int, float] = {}  # each document's best cosine to the query, as search hands it to the memory
    for h in everything:
        matches[h.hit.document_id] = max(matches.get(h.hit.document_id, -2.0), float(h.similarity or 0.0))
    # No move is larger than the spread of the documents' scores: the best one's less the SPREAD_RANK-th's (here
    # the last one's: there are fewer documents).
    page_scores: dict[int, float] = {}
    for h in everything:
        page_scores[h.hit.document_id] = max(page_scores.get(h.hit.document_id, -2.0), float(h.hit.score))
    ordered = sorted(page_scores.values(), reverse=True)
    assert len(ordered) < feedback_memory.SPREAD_RANK
    bound = ordered[0] - ordered[-1]
    assert bound < db.feedback_weight, "the data must make the spread cap matter"
    with psycopg.connect(database_url(db), autocommit=True) as conn:
        moves = feedback_memory.feedback_index(db, conn).moves(db, qvec, matches, scores=page_scores)
    assert max(abs(m.amount) for m in moves.values()) <= bound
    top = everything[0].hit  # the query's top document before feedback
    capped = 0

    def applied(h: ScoredHit) -> float:
        nonlocal capped
        move = moves.get(h.hit.document_id)
        if move is None:
            return 0.0
        # each answer showed its own document (read only when the guard needs it)
        assert move.amount <= 0 or move.shown == ({h.hit.document_id} if guard else set())
        guarded = (
            guard and move.amount > 0 and h.hit.document_id != top.document_id and top.document_id not in move.shown
        )
        if guarded and h.hit.score + move.amount > top.score - search.GUARD_GAP:
            capped += 1
            return max(0.0, top.score - search.GUARD_GAP - h.hit.score)
        return move.amount

    adjustment = {h.hit.chunk_id: applied(h) for h in everything}
    assert bool(capped) == bool(guard), "the data must make the guard matter"
    expected = sorted(everything, key=lambda h: (-(h.hit.score + adjustment[h.hit.chunk_id]), h.hit.chunk_id))
    assert [h.hit.chunk_id for h in got] == [h.hit.chunk_id for h in expected]
    assert [h.hit.chunk_id for h in got[:10]] != [h.hit.chunk_id for h in base]  # the feedback did reorder
    for hit, plain in zip(got, expected, strict=True):
        assert hit.feedback == pytest.approx(adjustment[hit.hit.chunk_id], abs=2e-6)  # Hit.score is rounded
        assert hit.hit.score == pytest.approx(plain.hit.score + hit.feedback, abs=2e-6)


def test_a_guarded_lift_passes_none_of_the_unseen_top_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a guard over the best three documents, a lift stops below the lowest unseen one above it, so it passes
    none of them; a document its supporters' answers showed is no obstacle, and nothing caps a demotion."""
    monkeypatch.setattr(feedback_memory, "UNSEEN_GUARD", 3)

    def row(chunk: int, document: int, score: float) -> tuple[object, ...]:
        return (chunk, document, "", "", "", "", str(chunk), b"", score, 0.5, False, None, None)

    rows = [row(1, 10, 0.030), row(2, 20, 0.025), row(3, 30, 0.020), row(4, 40, 0.010)]
    moves = {
        40: feedback_memory.Move(0.5, frozenset({30})),  # showed 30, never 10 or 20
        30: feedback_memory.Move(-0.001, frozenset()),
    }
    ranked = search._adjusted(rows, moves)
    assert [r[1] for r in ranked] == [10, 20, 40, 30]
    assert ranked[2][8] == pytest.approx(0.025 - search.GUARD_GAP)
    assert ranked[3][8] == pytest.approx(0.019)
    monkeypatch.setattr(feedback_memory, "UNSEEN_GUARD", 0)  # off: the lift is added whole
    assert search._adjusted(rows, moves)[0][1] == 40


def test_the_bound_is_capped_by_the_spread_of_the_querys_document_scores(
    db: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feedback moves a document at most from the query's SPREAD_RANK-th document to its first: the bound is the
    setting, or the gap between the best and the SPREAD_RANK-th document's score when that is smaller (the last
    one's when there are fewer)."""
    monkeypatch.setattr(feedback_memory, "SPREAD_RANK", 3)
    weight = db.feedback_weight
    assert feedback_memory.bound_for(db, [0.70, 0.65, 0.60, 0.10]) == pytest.approx(0.10)  # dense: 0.70 - 0.60
    assert feedback_memory.bound_for(db, [0.40, 0.60, 0.70]) == pytest.approx(0.30)  # any order: 0.70 - 0.40
    assert feedback_memory.bound_for(db, [0.95, 0.05, 0.01]) == weight  # far apart: the setting holds
    assert feedback_memory.bound_for(db, [0.70, 0.66]) == pytest.approx(0.04)  # fewer: the last one's
    assert feedback_memory.bound_for(db, [0.70]) == 0.0  # nothing to reorder
    assert feedback_memory.bound_for(db, []) == weight
    monkeypatch.setattr(feedback_memory, "SPREAD_RANK", 0)  # off: the setting alone
    assert feedback_memory.bound_for(db, [0.70, 0.65, 0.60, 0.10]) == weight
