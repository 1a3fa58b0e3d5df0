"""Feedback memory: the votes and corrections of similar past questions, as a bounded per-chunk score term.

A vote says which sources were right (or wrong) *for that question*, so it only counts for questions close
to it. At query time the nearest past questions (HNSW on answers.question_embedding) whose cosine reaches
`settings.feedback_threshold` lend their evidence to the documents their answers used:

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

Search (lore.search) joins the CTE on chunk id and adds `adj` to the fused score.
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

_SQL = """feedback_adj AS (
    SELECT c.id AS chunk_id, doc.adj
    FROM (
        SELECT ev.document_id,
               (%(fb_bound)s * tanh(%(fb_gain)s * sum(near.simw * ev.w)))::double precision AS adj
        FROM (
            SELECT a.id, a.chunk_ids,
                   (1 - (a.question_embedding <=> %(qvec)s) - %(fb_threshold)s) / (1 - %(fb_threshold)s) AS simw
            FROM (
                SELECT id, chunk_ids, question_embedding FROM answers
                WHERE question_embedding IS NOT NULL
                ORDER BY question_embedding <=> %(qvec)s
                LIMIT %(fb_neighbors)s
            ) a
            WHERE 1 - (a.question_embedding <=> %(qvec)s) >= %(fb_threshold)s
        ) near
        CROSS JOIN LATERAL (
            SELECT ch.document_id,
                   (SELECT sum(v.value)::double precision / (count(*) + %(fb_zz)s)
                    FROM votes v WHERE v.answer_id = near.id) / min(src.rank) AS w
            FROM unnest(near.chunk_ids) WITH ORDINALITY AS src(chunk_id, rank)
            JOIN chunks ch ON ch.id = src.chunk_id
            GROUP BY ch.document_id
            UNION ALL
            SELECT d.id, %(fb_correction)s
            FROM critiques cr JOIN documents d ON d.uri = cr.source_uri
            WHERE cr.answer_id = near.id
        ) ev
        WHERE ev.w IS NOT NULL AND ev.w <> 0
        GROUP BY ev.document_id
    ) doc
    JOIN chunks c ON c.document_id = doc.document_id
)"""


# A database with no feedback at all (a new deployment) needs no feedback term, and the CTE roughly doubles a
# search's cost (mostly planning). Searches skip it until feedback exists. "None yet" is re-checked at most
# every ABSENT_RECHECK_S seconds; "some" is remembered for the life of the process. Feedback recorded in this
# process marks it present at once; feedback recorded elsewhere is seen within ABSENT_RECHECK_S.
ABSENT_RECHECK_S = 5.0
_PRESENT = math.inf
_seen: dict[str, float] = {}
_seen_lock = threading.Lock()
_ANY_FEEDBACK = "SELECT EXISTS (SELECT 1 FROM votes) OR EXISTS (SELECT 1 FROM critiques WHERE source_uri IS NOT NULL)"


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
    """The `feedback_adj AS (...)` CTE (rows chunk_id, adj) and its parameters; the caller binds `qvec`."""
    params: dict[str, Any] = {
        "fb_threshold": float(min(settings.feedback_threshold, 0.999)),
        "fb_bound": float(settings.feedback_weight),
        "fb_gain": GAIN,
        "fb_neighbors": NEIGHBORS,
        "fb_zz": WILSON_Z * WILSON_Z,
        "fb_correction": CORRECTION_SCORE,
    }
    return _SQL, params
