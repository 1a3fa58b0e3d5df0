"""Feedback memory: the votes and corrections of similar past questions, as a bounded per-chunk score term.

A vote says which sources were right (or wrong) *for that question*, so it only counts for questions close
to it. At query time the nearest past questions with feedback (HNSW on feedback_answers) whose cosine
reaches `settings.feedback_threshold` lend their evidence (feedback_evidence, precomputed when the feedback
changes) to the documents their answers used:

- each voted answer contributes sim_w * score * rank_w to every chunk of a document it used, where
  sim_w ramps from 0 at the threshold to 1 at an identical question (no cliff at the threshold),
  score is the Wilson lower bound of the up share minus that of the down share, which simplifies to
  (up - down) / (n + z^2) (one vote counts 0.21, five agreeing ones 0.57, mixed votes cancel), and
  rank_w = 1/rank of the document's best chunk in that answer's context (the top source is what an
  answer stands or falls on);
- a correction from the thumbs-down dialog that names a source counts as strong evidence (CORRECTION_SCORE,
  several unanimous votes' worth) for that source's document;
- the sum is squashed with tanh and scaled by `settings.feedback_weight`, so no amount of feedback moves a
  chunk by more than that bound.

Search (lore.search) joins the CTE on document id and adds `adj` to the fused score.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import psycopg

from lore.config import Settings

# Nearest past questions examined: pgvector's default hnsw.ef_search, so the index scan returns them all.
NEIGHBORS = 40
# z for the Wilson bound (95 %): one lone vote scores 0.21, five agreeing ones 0.57.
WILSON_Z = 1.96
# A correction naming its source is worth about as much as a dozen unanimous votes.
CORRECTION_SCORE = 0.8
# Gain before tanh: one lone vote on an identical question moves a chunk by ~half the bound.
GAIN = 3.0

# What each voted (or corrected) answer says about the documents it used, precomputed when its feedback
# changes (refresh_evidence) so that a search only sums a few rows: for each document the answer used,
# score / rank of the document's best chunk in that answer's context, plus CORRECTION_SCORE for a document
# a correction names. `feedback_answers` holds the question embeddings of answers with any such evidence.
_REFRESH = (
    "DELETE FROM feedback_evidence WHERE answer_id = ANY(%(ids)s)",
    """
    INSERT INTO feedback_evidence (answer_id, document_id, w)
    SELECT answer_id, document_id, sum(w) FROM (
        SELECT s.answer_id, ch.document_id, s.score / min(src.rank) AS w
        FROM (
            SELECT answer_id, sum(value)::double precision / (count(*) + %(zz)s) AS score
            FROM votes WHERE answer_id = ANY(%(ids)s) GROUP BY answer_id
        ) s
        JOIN answers a ON a.id = s.answer_id
        CROSS JOIN LATERAL unnest(a.chunk_ids) WITH ORDINALITY AS src(chunk_id, rank)
        JOIN chunks ch ON ch.id = src.chunk_id
        WHERE s.score <> 0
        GROUP BY s.answer_id, ch.document_id, s.score
        UNION ALL
        SELECT cr.answer_id, d.id, %(correction)s
        FROM critiques cr JOIN documents d ON d.uri = cr.source_uri
        WHERE cr.answer_id = ANY(%(ids)s)
    ) e
    GROUP BY answer_id, document_id
    HAVING sum(w) <> 0
    """,
    """
    DELETE FROM feedback_answers f WHERE f.answer_id = ANY(%(ids)s)
    AND NOT EXISTS (SELECT 1 FROM feedback_evidence e WHERE e.answer_id = f.answer_id)
    """,
    """
    INSERT INTO feedback_answers (answer_id, question_embedding)
    SELECT a.id, a.question_embedding FROM answers a
    WHERE a.id = ANY(%(ids)s) AND a.question_embedding IS NOT NULL
      AND EXISTS (SELECT 1 FROM feedback_evidence e WHERE e.answer_id = a.id)
    ON CONFLICT (answer_id) DO NOTHING
    """,
)


def refresh_evidence(conn: psycopg.Connection[Any], answer_ids: list[int]) -> None:
    """Recompute the feedback memory's evidence of these answers (after their votes or corrections changed),
    in the caller's transaction, in one round trip. Run it in the same transaction as the change."""
    if not answer_ids:
        return
    params = {"ids": sorted(set(answer_ids)), "zz": WILSON_Z * WILSON_Z, "correction": CORRECTION_SCORE}
    with conn.pipeline():
        for statement in _REFRESH:
            conn.execute(statement, params)


def refresh_all(conn: psycopg.Connection[Any]) -> None:
    """Recompute every answer's evidence (after an upgrade, or a change of WILSON_Z / CORRECTION_SCORE)."""
    ids = conn.execute(
        "SELECT answer_id FROM votes UNION SELECT answer_id FROM critiques WHERE source_uri IS NOT NULL"
        " UNION SELECT answer_id FROM feedback_answers"
    ).fetchall()
    refresh_evidence(conn, [int(r[0]) for r in ids])


# At query time: the nearest past questions with evidence (HNSW on feedback_answers) whose cosine reaches the
# threshold lend their evidence to the documents it names, weighted by similarity; bounded by tanh.
_SQL = """feedback_adj AS (
    SELECT e.document_id,
           (%(fb_bound)s * tanh(%(fb_gain)s * sum(near.simw * e.w)))::double precision AS adj
    FROM (
        SELECT answer_id, (1 - dist - %(fb_threshold)s) / (1 - %(fb_threshold)s) AS simw
        FROM (
            SELECT answer_id, question_embedding <=> %(qvec)s AS dist FROM feedback_answers
            ORDER BY question_embedding <=> %(qvec)s
            LIMIT %(fb_neighbors)s
        ) x
        WHERE 1 - dist >= %(fb_threshold)s
    ) near
    JOIN feedback_evidence e ON e.answer_id = near.answer_id
    GROUP BY e.document_id
)"""


# A database with no feedback at all (a new deployment) needs no feedback term, and the CTE roughly doubles a
# search's cost (mostly planning). Searches skip it until feedback exists. "None yet" is re-checked at most
# every ABSENT_RECHECK_S seconds; "some" is remembered for the life of the process. Feedback recorded in this
# process marks it present at once; feedback recorded elsewhere is seen within ABSENT_RECHECK_S.
ABSENT_RECHECK_S = 5.0
_PRESENT = math.inf
_seen: dict[str, float] = {}
_seen_lock = threading.Lock()
_ANY_FEEDBACK = "SELECT EXISTS (SELECT 1 FROM feedback_answers)"


def _key(settings: Settings) -> str:
    return f"{settings.database_url}|{settings.home}"


def note_feedback(settings: Settings) -> None:
    """Feedback was just recorded: searches in this process include the feedback term from now on."""
    with _seen_lock:
        _seen[_key(settings)] = _PRESENT


def feedback_present(settings: Settings, conn: psycopg.Connection[Any]) -> bool:
    """Whether the database holds any feedback the memory could use (cached, see ABSENT_RECHECK_S)."""
    key = _key(settings)
    with _seen_lock:
        seen = _seen.get(key)
    if seen == _PRESENT:
        return True
    if seen is not None and time.monotonic() - seen < ABSENT_RECHECK_S:
        return False
    row = conn.execute(_ANY_FEEDBACK).fetchone()
    present = bool(row and row[0])
    with _seen_lock:
        if _seen.get(key) != _PRESENT:
            _seen[key] = _PRESENT if present else time.monotonic()
    return present


def feedback_cte(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The `feedback_adj AS (...)` CTE (rows document_id, adj) and its parameters; the caller binds `qvec`."""
    params: dict[str, Any] = {
        "fb_threshold": float(min(settings.feedback_threshold, 0.999)),
        "fb_bound": float(settings.feedback_weight),
        "fb_gain": GAIN,
        "fb_neighbors": NEIGHBORS,
    }
    return _SQL, params
