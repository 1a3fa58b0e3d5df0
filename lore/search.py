"""Hybrid retrieval in PostgreSQL: HNSW vector search + full text, fused by RRF, with ACL filter and boosts.

One network round trip per search: searches run on connections of their own (one per thread; autocommit,
no ping before use, replaced when broken) that carry the session settings search needs (pgvector's iterative
index scan, custom plans), so a search is one prepared statement. Only a search asking for a wider HNSW candidate list
first changes that connection's `hnsw.ef_search`, in the same pipeline.

- The permission filter `acl && visible` sits inside both candidate scans, so nothing outside the asker's
  view is ever a candidate. pgvector 0.8's iterative index scan (`relaxed_order`) keeps scanning the HNSW
  graph until enough rows pass a selective filter, so recall does not collapse for a small private channel.
- Reciprocal rank fusion (k=60) of the two ranked lists; then two bounded adjustments: the chunk's
  query-independent `boost` (in the statement) and the feedback memory (lore.feedback_memory) of similar
  past questions, computed in this process while the server runs the statement and added to every candidate.
- Near-duplicates (same text, or almost the same embedding) are collapsed to the best-scored one.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import psycopg

from lore.config import Settings
from lore.db import DatabaseError, database_url, register_vectors
from lore.embeddings import get_embedder
from lore.feedback_memory import FeedbackIndex, feedback_index
from lore.models import PUBLIC
from lore.types import Asker, Hit

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MODES = ("vector", "fulltext", "hybrid")
RRF_K = 60
# chunks.boost is clamped to this in the query: about the RRF gap between rank 1 and rank 10.
BOOST_BOUND = 0.004
# Cosine similarity above which two retrieved chunks count as the same passage.
NEAR_DUPLICATE_COSINE = 0.97
# pgvector's default; raised when more candidates are asked for.
MIN_EF_SEARCH = 40

# Session settings of every search connection (these connections serve nothing else):
# - relaxed_order: pgvector 0.8's iterative index scan, so a selective ACL filter does not starve the scan;
# - force_custom_plan: statements are prepared (parsed once) but planned with each search's own values, since
#   a generic plan cannot see how selective this asker's ACL is and may pick a bitmap scan + sort of the table.
_SESSION_SQL = "SET hnsw.iterative_scan = relaxed_order; SET plan_cache_mode = force_custom_plan"
# One connection per thread and process, opened on first use and replaced as soon as it breaks (a server
# restart costs the searches in flight, never the ones after it: no background reconnect with back-off).
_local = threading.local()
_ef_search: weakref.WeakKeyDictionary[psycopg.Connection[Any], int] = weakref.WeakKeyDictionary()


def _connect(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="lore-search")
    register_vectors(conn)
    conn.execute(_SESSION_SQL)
    _ef_search[conn] = MIN_EF_SEARCH
    return conn


def _connection(settings: Settings) -> psycopg.Connection[Any]:
    url = database_url(settings)
    key = (os.getpid(), url)
    conn: psycopg.Connection[Any] | None = getattr(_local, "conns", {}).get(key)
    if conn is None or conn.closed or conn.broken:
        if not hasattr(_local, "conns"):
            _local.conns = {}
        conn = _local.conns[key] = _connect(url)
    return conn


def _discard(settings: Settings) -> None:
    conns = getattr(_local, "conns", {})
    conn = conns.pop((os.getpid(), database_url(settings)), None)
    if conn is not None:
        conn.close()


class SearchError(ValueError):
    """A search request is invalid (unknown mode, bad k)."""


@dataclass(frozen=True)
class ScoredHit:
    """A hit with the signals the agent needs to judge relevance."""

    hit: Hit
    similarity: float | None  # cosine similarity of the chunk to the query (None without an embedding)
    fulltext: bool  # matched the full-text query
    feedback: float  # the feedback-memory adjustment that was added


def _vector_cte(with_acl: bool) -> str:
    where = "WHERE acl && %(acl)s::text[]" if with_acl else ""
    # MATERIALIZED: relaxed_order may return rows slightly out of order, so rank them again outside.
    return f"""vec AS MATERIALIZED (
    SELECT id, row_number() OVER (ORDER BY dist) AS rank FROM (
        SELECT id, embedding <=> %(qvec)s AS dist FROM chunks {where}
        ORDER BY embedding <=> %(qvec)s LIMIT %(n)s
    ) v
)"""


# websearch_to_tsquery parses the question (quoted phrases, -exclusions, OR); a plain question's implicit AND
# of every word is relaxed to OR, so one word the passage does not use cannot hide it, and ts_rank_cd ranks
# passages that cover more of the words first.
# An expression of the parameter only (not a joined relation), so the planner folds it to a constant and
# the GIN index on tsv serves the match.
_TSQUERY = (
    "(CASE WHEN websearch_to_tsquery('english', %(q)s)::text ~ '[!|]' THEN websearch_to_tsquery('english', %(q)s)"
    " ELSE replace(websearch_to_tsquery('english', %(q)s)::text, ' & ', ' | ')::tsquery END)"
)
_FULLTEXT_CTE = f"""fts AS MATERIALIZED (
    SELECT id, row_number() OVER (ORDER BY r DESC, id) AS rank FROM (
        SELECT c.id, ts_rank_cd(c.tsv, {_TSQUERY}) AS r
        FROM chunks c
        WHERE c.tsv @@ {_TSQUERY} AND c.acl && %(acl)s::text[]
        ORDER BY r DESC LIMIT %(n)s
    ) f
)"""

_EMPTY_VEC = "vec AS (SELECT NULL::bigint AS id, NULL::bigint AS rank WHERE false)"


_SELECT_HIT = """c.id, c.document_id, d.uri, d.title, c.heading, c.text, c.text_hash, c.embedding"""


def build_query(*, mode: str) -> str:
    """The search statement for a mode: every candidate, ranked by fused score plus the chunk's boost.

    Planning is a good part of a search's cost (plans are made per search, for the asker's ACL), so each
    mode gets the smallest statement that does its job: vector mode ranks the HNSW candidates directly.
    The statement returns all candidates (not just the top k) because the feedback memory's adjustments are
    added afterwards, in Python, from a product computed while PostgreSQL runs the statement (see `_run`).
    """

    def boost(alias: str) -> str:
        return f"LEAST(GREATEST({alias}.boost, -{BOOST_BOUND}), {BOOST_BOUND})"

    if mode == "vector":
        # The HNSW scan reads the whole rows it returns anyway: take every column there, no second lookup by id.
        return f"""SELECT v.id, v.document_id, d.uri, d.title, v.heading, v.text, v.text_hash, v.embedding,
       1.0 / ({RRF_K} + v.rank) + {boost("v")} AS score, 1 - v.dist AS similarity, false
FROM (
    SELECT v0.*, row_number() OVER (ORDER BY v0.dist) AS rank FROM (
        SELECT id, document_id, heading, text, text_hash, embedding, boost, embedding <=> %(qvec)s AS dist
        FROM chunks WHERE acl && %(acl)s::text[]
        ORDER BY embedding <=> %(qvec)s LIMIT %(n)s
    ) v0
) v
JOIN documents d ON d.id = v.document_id
ORDER BY score DESC, v.id"""
    vec = _vector_cte(with_acl=True) if mode == "hybrid" else _EMPTY_VEC
    return f"""WITH {vec}, {_FULLTEXT_CTE},
fused AS (
    SELECT id, sum(1.0 / ({RRF_K} + rank))::double precision AS rrf, bool_or(is_fts) AS is_fts
    FROM (SELECT id, rank, false AS is_fts FROM vec UNION ALL SELECT id, rank, true FROM fts) u
    GROUP BY id
)
SELECT {_SELECT_HIT},
       f.rrf + {boost("c")} AS score,
       1 - (c.embedding <=> %(qvec)s) AS similarity, f.is_fts
FROM fused f
JOIN chunks c ON c.id = f.id
JOIN documents d ON d.id = c.document_id
ORDER BY score DESC, c.id"""


def _feedback_index(settings: Settings) -> FeedbackIndex:
    """This process's feedback memory, brought up to date on the search connection (a query at most once a
    second, or after feedback recorded in this process)."""
    try:
        return feedback_index(settings, _connection(settings))
    except psycopg.OperationalError:
        _discard(settings)  # a broken connection (server restart): one retry on a fresh one
        try:
            return feedback_index(settings, _connection(settings))
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"cannot reach the database for search: {exc}".splitlines()[0]) from exc


def candidate_count(k: int, mode: str) -> int:
    """How many candidates each scan returns: a margin for de-duplication, more for fusion to work with."""
    return max(2 * k, k + 10) if mode == "vector" else max(3 * k, 30)


def visible_acl(asker: Asker | None) -> list[str]:
    return asker.visible_acl() if asker is not None else [PUBLIC]


def embed_query(settings: Settings, query: str) -> np.ndarray:
    return np.asarray(get_embedder(settings).embed([query])[0], dtype=np.float32)


def search_scored(
    settings: Settings,
    query: str,
    *,
    asker: Asker | None = None,
    k: int = 10,
    mode: str = "hybrid",
    query_embedding: np.ndarray | None = None,
    use_feedback: bool = True,
) -> list[ScoredHit]:
    """`hybrid_search` with relevance signals per hit (similarity, full-text match, feedback term)."""
    if mode not in MODES:
        raise SearchError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
    if k < 1:
        raise SearchError(f"k must be at least 1, got {k}")
    query = query.strip()
    if not query:
        return []
    qvec = np.asarray(query_embedding if query_embedding is not None else embed_query(settings, query), np.float32)
    index = _feedback_index(settings) if use_feedback else None

    def feedback() -> dict[int, float]:
        if index is None:
            return {}
        documents, adjustments = index.adjustments(settings, qvec)
        return dict(zip(documents, adjustments, strict=True))

    n = candidate_count(k, mode)
    params: dict[str, Any] = {"qvec": qvec, "q": query, "acl": visible_acl(asker), "n": n}
    sql = build_query(mode=mode)
    try:
        rows, adjustments = _run(settings, sql, params, ef_search=max(MIN_EF_SEARCH, n), meanwhile=feedback)
    except psycopg.OperationalError:
        # The server closed this connection (restart, idle timeout): one retry on a fresh one.
        _discard(settings)
        rows, adjustments = _run(settings, sql, params, ef_search=max(MIN_EF_SEARCH, n), meanwhile=feedback)
    return _collapse(_adjusted(rows, adjustments) if adjustments else rows, k)


def _adjusted(rows: list[tuple[Any, ...]], adjustments: dict[int, float]) -> list[tuple[Any, ...]]:
    """Rows with each document's feedback adjustment added to the score (and reported), ranked again."""
    out = []
    for row in rows:
        adj = adjustments.get(int(row[1]), 0.0)
        out.append((*row[:8], float(row[8]) + adj, *row[9:11], adj))
    out.sort(key=lambda r: (-r[8], r[0]))
    return out


def _run(
    settings: Settings,
    sql: str,
    params: dict[str, Any],
    *,
    ef_search: int,
    meanwhile: Callable[[], _T],
) -> tuple[list[tuple[Any, ...]], _T]:
    """Run the search statement, and `meanwhile` while PostgreSQL executes it.

    In pipeline mode the statement is sent at once and its result read only when the pipeline closes, so the
    feedback memory's product (memory-bound: its matrix is evicted from the CPU cache between searches) runs on
    this core while the server's backend runs the index scan on the other, instead of one after the other.
    """
    try:
        conn = _connection(settings)
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to the database for search: {exc}".splitlines()[0]) from exc
    # Binary results: the embeddings (for near-duplicate collapse) arrive as raw floats, not text to parse.
    cur = conn.cursor(binary=True)
    with conn.pipeline():
        if _ef_search.get(conn) != ef_search:
            conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef_search),))
            _ef_search[conn] = ef_search
        cur.execute(sql, params, prepare=True)
        extra = meanwhile()
    return cur.fetchall(), extra


def _collapse(rows: list[tuple[Any, ...]], k: int) -> list[ScoredHit]:
    """Keep the best of each group of near-duplicates (same text hash, or embeddings almost identical)."""
    if not rows:
        return []
    vectors = np.stack([np.asarray(row[7], dtype=np.float32) for row in rows])
    cosines = vectors @ vectors.T  # every pair at once: one product instead of one per pair
    kept: list[ScoredHit] = []
    kept_rows: list[int] = []
    seen_hashes: set[str] = set()
    for i, row in enumerate(rows):
        chunk_id, document_id, uri, title, heading, text, text_hash, _, score, similarity, is_fts = row[:11]
        if text_hash in seen_hashes or (kept_rows and float(cosines[i, kept_rows].max()) >= NEAR_DUPLICATE_COSINE):
            continue
        seen_hashes.add(text_hash)
        kept_rows.append(i)
        hit = Hit(
            chunk_id=int(chunk_id),
            document_id=int(document_id),
            uri=uri,
            title=title,
            heading=heading,
            text=text,
            score=round(float(score), 6),
        )
        adj = float(row[11]) if len(row) > 11 else 0.0  # the feedback term, when `_adjusted` added one
        kept.append(ScoredHit(hit, None if similarity is None else float(similarity), bool(is_fts), adj))
        if len(kept) == k:
            break
    return kept


def hybrid_search(
    settings: Settings,
    query: str,
    *,
    asker: Asker | None = None,
    k: int = 10,
    mode: str = "hybrid",
    query_embedding: np.ndarray | None = None,
    use_feedback: bool = True,
) -> list[Hit]:
    """The k best chunks the asker may see for `query` (asker None: public documents only)."""
    scored = search_scored(
        settings, query, asker=asker, k=k, mode=mode, query_embedding=query_embedding, use_feedback=use_feedback
    )
    return [s.hit for s in scored]
