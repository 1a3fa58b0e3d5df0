"""Hybrid search on a real PostgreSQL+pgvector: each mode, the permission filter and duplicates."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lore.config import Settings
from lore.db import raw_connection, register_vectors
from lore.search import NEAR_DUPLICATE_COSINE, SearchError, embed_query, hybrid_search, search_scored
from lore.types import Asker
from tests.search.conftest import CANARY, PRIVATE_CHANNEL


def test_vector_mode_finds_the_passage_by_meaning(db: Settings, kb: dict[str, int]) -> None:
    hits = hybrid_search(db, "how can I work remotely over a secure tunnel", mode="vector", k=3)
    assert hits and hits[0].heading == "VPN"
    assert hits[0].uri.endswith("/onboarding") or hits[0].uri.endswith("/onboarding-copy")


def test_fulltext_mode_returns_only_term_matches(db: Settings, kb: dict[str, int]) -> None:
    hits = hybrid_search(db, "ERR_4711", mode="fulltext", k=5)
    assert [h.heading for h in hits] == ["Rollback"]
    assert hybrid_search(db, "zanzibar quokka", mode="fulltext") == []


def test_hybrid_mode_ranks_a_match_on_both_signals_first(db: Settings, kb: dict[str, int]) -> None:
    hits = search_scored(db, "roll back a failed deploy", k=5)
    assert hits[0].hit.heading == "Rollback" and hits[0].fulltext
    scores = [h.hit.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_modes_are_validated(db: Settings) -> None:
    with pytest.raises(SearchError, match="unknown search mode"):
        hybrid_search(db, "x", mode="semantic")


@pytest.mark.parametrize("mode", ["vector", "fulltext", "hybrid"])
def test_private_channel_canary_never_reaches_outsiders(db: Settings, kb: dict[str, int], mode: str) -> None:
    query = f"secret launch codename {CANARY}"
    outsiders = [
        None,
        Asker(channel_id="C0OTHER"),
        Asker(user_id="U1", is_dm=True, member_channels=["C0OTHER"]),
    ]
    for asker in outsiders:
        hits = hybrid_search(db, query, asker=asker, mode=mode, k=50)
        assert all(CANARY not in h.text for h in hits), (asker, mode)
        assert all(h.uri != "slack://C0SECRET/launch" for h in hits)
    members = [
        Asker(channel_id=PRIVATE_CHANNEL),
        Asker(user_id="U2", is_dm=True, member_channels=["C0X", PRIVATE_CHANNEL]),
    ]
    for asker in members:
        hits = hybrid_search(db, query, asker=asker, mode=mode, k=5)
        assert hits and CANARY in hits[0].text, (asker, mode)


def test_feedback_term_is_zero_without_votes(db: Settings, kb: dict[str, int]) -> None:
    with_feedback = search_scored(db, "VPN from home", k=5, use_feedback=True)
    without = search_scored(db, "VPN from home", k=5, use_feedback=False)
    assert with_feedback and all(s.feedback == 0.0 for s in with_feedback)
    assert [(s.hit.chunk_id, s.hit.score) for s in with_feedback] == [(s.hit.chunk_id, s.hit.score) for s in without]


def test_identical_passages_are_collapsed(db: Settings, kb: dict[str, int]) -> None:
    hits = hybrid_search(db, "connect to the VPN from home with WireGuard", k=5)
    vpn = [h for h in hits if h.heading == "VPN"]
    assert len(vpn) == 1
    assert len({h.text for h in hits}) == len(hits)


def test_empty_query_returns_nothing(db: Settings, kb: dict[str, int]) -> None:
    assert hybrid_search(db, "   ") == []


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_near_duplicate_passages_are_collapsed_to_the_best_one(db: Settings, mode: str) -> None:
    """Different text (so a different hash: spacing and case, as two exports of one page differ) but almost the
    same embedding: one of the two is shown."""
    from tests.feedback.helpers import add_doc, embed

    a = add_doc(db, uri="kb://reset-a", title="A", texts=["Reset your password from the account settings page."])
    b = add_doc(db, uri="kb://reset-b", title="B", texts=["Reset your  password from the Account Settings page."])
    other = add_doc(db, uri="kb://sso", title="SSO", texts=["Single sign-on uses the company identity provider."])
    first, second = embed(
        db,
        ["Reset your password from the account settings page.", "Reset your  password from the Account Settings page."],
    )
    assert float(first @ second) >= NEAR_DUPLICATE_COSINE  # the premise: near-duplicates by embedding
    hits = search_scored(db, "how do I reset my password?", k=3, mode=mode)
    ids = [h.hit.chunk_id for h in hits]
    assert len(set(ids) & {a[0], b[0]}) == 1
    assert other[0] in ids


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_a_search_whose_candidates_collapse_below_k_asks_for_more(db: Settings, mode: str) -> None:
    """More copies of one passage than the candidate margin (the same page exported many times): they collapse to
    one, and the search asks again for more candidates instead of answering with fewer than k."""
    from lore.search import candidate_count
    from tests.feedback.helpers import add_doc

    copies = candidate_count(3, mode) + 2
    for n in range(copies):
        add_doc(db, uri=f"kb://export-{n}", title="Export", texts=["Reset your password from the account settings."])
    others = [
        add_doc(db, uri=f"kb://other-{n}", title="Other", texts=[text])[0]
        for n, text in enumerate(
            [
                "Passwords expire every 90 days; the account page shows when.",
                "Two-factor authentication is required for every account.",
                "Locked accounts are unlocked by the help desk after a call.",
            ]
        )
    ]
    hits = search_scored(db, "Reset your password from the account settings.", k=3, mode=mode)
    assert len(hits) == 3
    assert sum(h.hit.text == "Reset your password from the account settings." for h in hits) == 1
    assert len({h.hit.chunk_id for h in hits} & set(others)) == 2


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_passages_close_in_sign_bits_but_not_near_duplicates_are_both_kept(
    db: Settings, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sign bits only nominate pairs; the embeddings decide. These two differ in one word: few sign bits
    apart, so they are compared exactly, and their cosine is just under the threshold, so both are shown."""
    import lore.search
    from tests.feedback.helpers import add_doc, embed

    texts = [
        "Reset your password from the account settings page.",
        "Reset your password from the account security page.",
    ]
    a = add_doc(db, uri="kb://reset-settings", title="A", texts=[texts[0]])
    b = add_doc(db, uri="kb://reset-security", title="B", texts=[texts[1]])
    first, second = embed(db, texts)
    assert 0.9 < float(first @ second) < NEAR_DUPLICATE_COSINE  # the premise: close, but not near-duplicates
    assert int(((first > 0) != (second > 0)).sum()) <= lore.search.SIGN_BITS_APART  # and nominated by sign bits
    fetched: list[list[int]] = []
    real = lore.search._embeddings
    monkeypatch.setattr(lore.search, "_embeddings", lambda s, ids: fetched.append(ids) or real(s, ids))
    ids = [h.hit.chunk_id for h in search_scored(db, "how do I reset my password?", k=3, mode=mode)]
    assert {a[0], b[0]} <= set(ids)
    assert fetched == [sorted([a[0], b[0]])]  # compared exactly, once


def test_a_failed_near_duplicate_check_leaves_the_search_answering(db: Settings, kb: dict[str, int]) -> None:
    """The second round trip (embeddings of candidate pairs) on a connection the server dropped: no collapse
    for that search, and the next search reconnects."""
    import lore.search

    assert hybrid_search(db, "connect to the VPN", k=3)  # opens this thread's search connection
    conn = lore.search._connection(db)
    with raw_connection(db) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
    assert lore.search._embeddings(db, [1, 2]) == {}
    assert hybrid_search(db, "connect to the VPN", k=3)


def test_vector_mode_writes_the_acl_into_its_statement_quoted_and_plans_it_once(
    db: Settings, kb: dict[str, int]
) -> None:
    """Vector mode's statement carries the asker's ACL in its text, so that PostgreSQL keeps one plan per ACL
    (`_vector_sql`). A channel name with quotes, braces, a comma and a backslash matches only itself; the plan
    is reused after the first ten searches, with the same results; a dropped connection is replaced."""
    import lore.search
    from harness.kb import add_document

    odd = "C0'x\"},{y\\"
    add_document(
        db, uri="slack://odd/doc", title="Odd", sections=[("Odd", "The odd channel's canary is QUOKKA-42.")], acl=[odd]
    )
    query = "what is the odd channel's canary?"
    for asker in (None, Asker(channel_id="C0'x"), Asker(channel_id="y\\"), Asker(channel_id=odd[:-1])):
        assert all("QUOKKA" not in h.text for h in hybrid_search(db, query, asker=asker, mode="vector", k=10))
    first = hybrid_search(db, query, asker=Asker(channel_id=odd), mode="vector", k=3)
    assert "QUOKKA" in first[0].text
    for _ in range(12):
        assert hybrid_search(db, query, asker=Asker(channel_id=odd), mode="vector", k=3) == first
    conn = lore.search._connection(db, vector=True)
    generic = conn.execute(
        "SELECT max(generic_plans) FROM pg_prepared_statements WHERE statement LIKE '%hnsw.ef_search%'"
    ).fetchone()
    # 13 searches of that ACL: psycopg prepares it after five, PostgreSQL plans it five times, then caches the plan
    assert generic is not None and generic[0] > 0
    with raw_connection(db) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
    assert hybrid_search(db, query, asker=Asker(channel_id=odd), mode="vector", k=3) == first


def test_near_pairs_finds_exactly_the_near_duplicate_pairs_the_embeddings_define() -> None:
    """`_near_pairs` on candidates shaped as the statement returns them (pgvector's binary bit(384): a 4-byte
    length, then the bits), against comparing every pair exactly: planted near-duplicates at several distances,
    unrelated rows, and rows without a similarity to the query. Only nominated pairs are fetched."""
    import numpy as np

    import lore.search

    rng = np.random.default_rng(3)
    query = rng.standard_normal(384)
    query /= np.linalg.norm(query)
    vectors = []
    for _ in range(8):  # each base with copies nudged by growing noise: some near-duplicates, some not
        base = rng.standard_normal(384)
        for scale in (0.0, 0.005, 0.01, 0.03):  # cosine to the base about 1, 0.995, 0.98, 0.86
            v = base + scale * rng.standard_normal(384)
            vectors.append(v / np.linalg.norm(v))
    vectors += [v / np.linalg.norm(v) for v in rng.standard_normal((8, 384))]  # unrelated to every other row
    order = rng.permutation(len(vectors))
    vectors = [vectors[i] for i in order]
    rows = []
    for n, v in enumerate(vectors):
        bits = len(v).to_bytes(4, "big") + np.packbits(v > 0).tobytes()
        similarity = None if n % 7 == 3 else float(v @ query)
        rows.append((100 + n, 1, "kb://x", "X", "", "text", f"h{n}", bits, 0.0, similarity, False))
    by_id = {100 + n: v.astype(np.float32) for n, v in enumerate(vectors)}
    fetched: list[int] = []

    def fetch(ids: list[int]) -> dict[int, np.ndarray]:
        fetched.extend(ids)
        return {i: by_id[i] for i in ids}

    got = lore.search._near_pairs(rows, fetch)
    expected: dict[int, list[int]] = {}
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            if float(by_id[100 + i] @ by_id[100 + j]) >= NEAR_DUPLICATE_COSINE:
                expected.setdefault(i, []).append(j)
    assert sum(map(len, expected.values())) >= 8, "the data must hold near-duplicate pairs"
    assert got == expected
    assert len(fetched) <= len(vectors) - 8  # the sign bits ruled the unrelated rows out before any comparison


@pytest.mark.parametrize("planted", [0, 1, 3])
def test_collapse_keeps_what_comparing_every_pair_exactly_keeps(planted: int) -> None:
    """`_collapse` against its definition (walk the rows best first; drop a row whose text hash was seen or that
    is a near-duplicate of a kept row, by exact cosine), with no near-duplicates (no embeddings fetched at all)
    and with some planted among the first rows; a repeated text hash is dropped either way."""
    import numpy as np

    import lore.search

    rng = np.random.default_rng(planted)
    query = rng.standard_normal(384)
    query /= np.linalg.norm(query)
    vectors = [v / np.linalg.norm(v) for v in rng.standard_normal((20, 384))]
    for n in range(planted):  # row 2n+1 becomes a near-duplicate of row 2n
        v = vectors[2 * n] + 0.01 * rng.standard_normal(384)  # cosine about 0.98
        vectors[2 * n + 1] = v / np.linalg.norm(v)
    rows = []
    for n, v in enumerate(vectors):
        bits = len(v).to_bytes(4, "big") + np.packbits(v > 0).tobytes()
        text_hash = "same" if n in (7, 9) else f"h{n}"
        rows.append(
            (100 + n, 1, "kb://x", "X", "", "text", text_hash, bits, 1.0 - n / 100, float(v @ query), False, None, None)
        )
    by_id = {100 + n: v.astype(np.float32) for n, v in enumerate(vectors)}
    fetched: list[list[int]] = []

    def fetch(ids: list[int]) -> dict[int, np.ndarray]:
        fetched.append(ids)
        return {i: by_id[i] for i in ids}

    got = [h.hit.chunk_id for h in lore.search._collapse(rows, 10, fetch)]
    expected: list[int] = []
    hashes: set[str] = set()
    for n, row in enumerate(rows):
        near_kept = any(float(by_id[kept] @ by_id[100 + n]) >= NEAR_DUPLICATE_COSINE for kept in expected)
        if row[6] in hashes or near_kept:
            continue
        hashes.add(row[6])
        expected.append(100 + n)
        if len(expected) == 10:
            break
    assert got == expected
    assert 109 not in got  # the repeated text hash
    assert (fetched != []) == (planted > 0)  # embeddings only when some pair needs an exact comparison


def test_hybrid_ranks_candidates_by_similarity_plus_their_share_of_the_questions_words(
    db: Settings, kb: dict[str, int]
) -> None:
    """Score fusion: every candidate of either list scores its cosine similarity to the question, mixed with its
    page vector's (the normalized mean of its document's passage embeddings, computed here from the stored
    passages; a one-passage document counts its passage's similarity less the gap between the most similar
    candidate on a longer page and that page), plus the question's full-text weight times the share of the
    question's words the passage uses, each word weighted by its rarity in the corpus (computed here from the
    passages' texts and PostgreSQL's statistics), and reports that sum as its score (vector mode reports the
    similarity itself; full-text mode the saturated ts_rank_cd). A passage that uses none of the words keeps its
    similarity, so full text cannot carry a passage past one that is more than the weight closer."""
    from harness.kb import add_document
    from lore.search import _TSQUERY, FULLTEXT_SATURATION, coverage_weights, fusion_for, lexeme_shares

    add_document(  # a one-passage document among the candidates
        db,
        uri="https://wiki.example.com/release-notes",
        title="Release notes",
        sections=[("API 2.3", "The API deploy of 2.3 failed once in staging; it was rolled back the same day.")],
    )
    with raw_connection(db) as conn:
        conn.execute("ANALYZE chunks")  # the words' shares come from the statistics
    question = "roll back a failed deploy of the API"
    hybrid = search_scored(db, question, k=30, mode="hybrid", use_feedback=False)
    fulltext = {h.hit.chunk_id for h in search_scored(db, question, k=30, mode="fulltext", use_feedback=False)}
    vector = {h.hit.chunk_id for h in search_scored(db, question, k=30, mode="vector", use_feedback=False)}
    got = [h.hit.chunk_id for h in hybrid]
    assert set(got) & fulltext and set(got) - fulltext, "some candidates must match by words and some by meaning only"
    assert set(got) <= fulltext | vector
    with raw_connection(db) as conn:
        ranks = dict(
            conn.execute(
                f"SELECT id, ts_rank_cd(tsv, {_TSQUERY}) FROM chunks WHERE id = ANY(%(ids)s)",
                {"q": question, "ids": sorted(fulltext)},
            ).fetchall()
        )
        question_lexemes = conn.execute("SELECT tsvector_to_array(to_tsvector('english', %s))", (question,)).fetchone()
        used = dict(conn.execute("SELECT id, tsvector_to_array(tsv) FROM chunks WHERE id = ANY(%s)", (got,)).fetchall())
    lexemes = list(question_lexemes[0]) if question_lexemes else []
    words = lexeme_shares(db)
    assert words["shares"], "the statistics list the corpus's words"
    weight = dict(zip(lexemes, coverage_weights(lexemes, words["shares"], words["floor"]), strict=True))
    assert len(set(weight.values())) > 1, "the question's words weigh by their rarity"

    def coverage(chunk: int) -> float:
        return sum(w for lex, w in weight.items() if lex in used[chunk])

    assert {coverage(c) for c in got} - {0.0}, "some candidates use the question's words"
    fusion = fusion_for(db, question)
    assert 0 < fusion.ftw < 1 and 0 < fusion.page < 1 and sum(fusion.weights) == pytest.approx(1.0)
    with raw_connection(db) as conn:
        register_vectors(conn)
        # the knowledge base is small: every public passage is a candidate of the vector list
        stored = conn.execute("SELECT id, document_id, embedding FROM chunks WHERE 'public' = ANY(acl)").fetchall()
    qvec = embed_query(db, question).astype(np.float64)
    similarity = {int(c): float(np.asarray(v, np.float64) @ qvec) for c, _, v in stored}
    by_document: dict[int, list[np.ndarray]] = {}
    for _, document, vector in stored:
        by_document.setdefault(int(document), []).append(np.asarray(vector, np.float64))
    page = {
        d: float(np.mean(v, axis=0) @ qvec / np.linalg.norm(np.mean(v, axis=0)))
        for d, v in by_document.items()
        if len(v) > 1
    }
    assert len(page) < len(by_document), "some document has one passage"
    best, its_page = max((similarity[int(c)], page[int(d)]) for c, d, _ in stored if int(d) in page)
    gap = best - its_page

    def saturated(chunk: int) -> float:
        r = ranks.get(chunk, 0.0)
        return r / (r + FULLTEXT_SATURATION)

    fused = {
        h.hit.chunk_id: (1 - fusion.page) * (float(h.similarity or 0.0) + fusion.ftw * coverage(h.hit.chunk_id))
        + fusion.page * page.get(h.hit.document_id, similarity[h.hit.chunk_id] - gap)
        for h in hybrid
    }
    assert any(h.hit.document_id not in page for h in hybrid)
    assert got == sorted(fused, key=lambda c: (-fused[c], c))
    assert all(h.fulltext == (h.hit.chunk_id in fulltext) for h in hybrid)
    assert [h.words for h in hybrid] == pytest.approx([coverage(c) for c in got], abs=1e-9)  # what "why" shows
    assert [h.hit.score for h in hybrid] == pytest.approx([fused[c] for c in got], abs=1e-6)
    vector_hits = search_scored(db, question, k=30, mode="vector", use_feedback=False)
    assert [h.hit.score for h in vector_hits] == pytest.approx([h.similarity for h in vector_hits], abs=1e-6)
    fulltext_hits = search_scored(db, question, k=30, mode="fulltext", use_feedback=False)
    assert [h.hit.score for h in fulltext_hits] == pytest.approx(
        [saturated(h.hit.chunk_id) for h in fulltext_hits], abs=1e-6
    )
    assert all(a >= b for a, b in itertools.pairwise(h.hit.score for h in fulltext_hits))
