"""Feedback memory: the votes, comparisons and corrections of similar past questions, as a bounded per-document term.

A vote says something about the answer *for that question*, so it only counts for questions close to it. At query
time, for the documents the search found (its candidates), the nearest past questions with feedback about them
(feedback_answers, held in memory by each searching process: FeedbackIndex) whose cosine reaches
`settings.feedback_threshold` lend their evidence (feedback_evidence, precomputed when the feedback changes) to
those documents. What each kind of feedback is evidence of (refresh_evidence):

- 👍 says the answer's main sources helped: the sources a language model cited inline ([n]), or, when it cited
  none, the top source. A search-only answer's main sources are its top source and those of the sentences it
  quotes ("> sentence [n]", lore.extract: what the reader took as the answer; QUOTED_MAIN). Other sources ranked
  below the top are not credited.
- 👎 says the answer as shown failed: it counts against the source the answer led with (the first one cited
  inline, else the top source) and nothing else, so a right page shown at rank 2 to 4 is never pushed down.
- A vote's score is the Wilson lower bound of the up share minus that of the down share, which simplifies to
  (up - down) / (n + z^2): one vote counts 0.21, five agreeing ones 0.57, mixed votes cancel.
- A voter who says which source answered it ("Which source answered it?" after a 👍: source_picks) has their 👍
  credit that page alone, in place of the main sources: one share of the Wilson score (1 / (n + z^2)). The other
  👍 of the same answer follow the named pages (NAMED_FOR_ALL), shared as they were named: all saw the same answer,
  and one voter's word on which source helped is the best there is. A lenient voter's 👍 for a right page shown
  second no longer lifts the page the answer led with, even when only one voter in three answers the question.
- "Which is better?" after Regenerate (comparisons) credits the chosen answer's main sources and counts against
  the source the rejected one led with, unless the chosen one relied on it too: COMPARISON_SCORE per pair, more
  than a vote. A correction naming a page is the clearest signal: CORRECTION_SCORE for that page.

At query time a near question's evidence about a document holds with the chance that the query asks the same thing,
which ramps from 0 at the threshold to 1 at RAMP_TOP (an identical question; no cliff), times the evidence's
strength (tanh of GAIN times its score): strong evidence is surer, but it reaches no further than a vote does, so a
correction for one question does not spill onto every question that merely resembles it. Resembling is not enough
either: feedback only reorders what the query itself finds plausible. Search hands over each candidate document's
best cosine to the query; a document moves fully when it matches as well as the best candidate, and not at all
MATCH_MARGIN below it. A question about dates resembles an upvoted one about command-line options (both "parse ...
in a script"), but matches the argparse page far less than the datetime page, so that vote cannot lift argparse for
it. That restraint loosens as the past question nears the query (by the same chance that it asks the same thing):
votes on a near-identical question move a page the query alone finds far off, as the team meant them to. A
correction naming a page is exempt: the team said that page is the answer. Several near questions combine as
independent chances (1 - prod(1 - chance)). Optionally (UNSEEN_GUARD, off by default), a lift is read as a
preference over what the voters saw: an upvoted answer says its page beat the other pages it showed, nothing about
pages it never showed, so a lifted page may pass the query's own best UNSEEN_GUARD pages only if some answer that
lifts it showed them (a corrected answer counts the page its correction named as shown). It stops "log the full
error trace", upvoted for the traceback page, from lifting it over faulthandler for "a traceback when my program
segfaults"; but on 240 benchmark questions it stopped as many right lifts (a rephrasing's answer rarely shows the
page the original wording puts first), so it is off: docs/benchmarks.md has the figures, with those of RAMP_TOP
below 1.
Per document, evidence for it and against it are combined apart: any evidence for a page from a near question vetoes
the evidence against it (a page that upvoted answers to similar questions relied on is not demoted), and what is
left against a page moves it by at most NEGATIVE_SHARE of the bound (👎 demotes weakly). Both are scaled by a bound,
so no amount of feedback moves a document by more than it: `settings.feedback_weight`, or the spread of the query's
own candidate documents' scores when that is smaller, the best one's less the SPREAD_RANK-th's (`bound_for`; search
passes the scores). A vote thus takes a page at most from the query's tenth place to first. In a dense topic of a
large knowledge base the first ten pages lie within a fifth of the bound's units, and a lift the size of the bound
from a neighbouring question, voted for a page of the same topic, passed the page that answers the query: on the
1,060 benchmark questions of session 16 the cap halved the harm to untouched questions after votes (strict -0.013 ->
-0.006, lenient -0.017 -> -0.005) for the same strict lift, where a smaller bound for every query would break what a
small knowledge base is promised (two 👍 or a correction lift the right page over one far above it:
tests/feedback/test_search_feedback.py). Search scores are cosine similarities (hybrid: plus a bounded full-text
term), so the bound is in those units: 0.4 by default, chosen with the threshold 0.35 on 290 benchmark questions.
The threshold is 0.40 since session 14: on 700 questions it halves the harm to questions no one voted on (MRR@10
after votes -0.010 -> -0.005, after corrections -0.021 -> -0.008) for the same lift, since two unrelated questions
that share a few words can be as close as 0.43 for this embedder ("build", "binaries": a blind set's one harmed
question) and lent each other their votes (docs/benchmarks.md).

Search (lore.search) computes the adjustments of its candidates' documents once PostgreSQL has returned them,
and adds them to each candidate's fused score. Only the past questions with evidence about those documents
are compared with the query: usually a handful, where comparing all of them would be a memory-bound product
over the whole matrix on every search, growing with the feedback.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
import psycopg

from lore.config import Settings
from lore.db import decode_vectors
from lore.prompts import QUOTE_LINE_SQL
from lore.types import EMBEDDING_DIM

# Nearest past questions (with evidence about the candidates) that count: a flood of similar questions
# cannot outvote the closest ones.
NEIGHBORS = 40
# Gathering the rows of the questions to compare copies them; past this share of the matrix, one product
# over all of it is cheaper.
GATHER_SHARE = 0.25
# z for the Wilson bound (95 %): one lone vote scores 0.21, five agreeing ones 0.57.
WILSON_Z = 1.96
# A correction naming its source is worth about as much as a dozen unanimous votes.
CORRECTION_SCORE = 0.8
# A "which is better?" choice, per pair of answers: n choosers score n / (n + 1) of this (one: 0.5, more than
# two unanimous votes), for the chosen answer's main sources and against the rejected answer's lead.
COMPARISON_SCORE = 1.0
# Gain before tanh: one lone vote on an identical question moves a document by ~half the bound, three agreeing
# votes by ~0.85 of it, a correction by ~0.98.
GAIN = 3.0
# Evidence against a page moves it down by at most this share of the bound (a 👎 says the answer failed, not
# which of its sources was wrong): enough to let a page just below overtake it, not to bury it.
NEGATIVE_SHARE = 0.25
# Feedback reorders what the query itself finds plausible: a document moves fully when the query matches it (its
# best chunk's cosine) as well as its best candidate, and not at all MATCH_MARGIN or more below that.
MATCH_MARGIN = 0.15
# The chance that a past question asks what the query asks ramps from 0 at the threshold to 1 at this cosine.
RAMP_TOP = 1.0
# No feedback moves a document further than the query's own scores spread: the bound is at most the gap between the
# best candidate document's score and the SPREAD_RANK-th's (the last one's when fewer; 0: the bound alone). Where
# the query's first pages are close (a dense topic in a large knowledge base), a vote reorders them without flooding
# past them; where the candidates are far apart (a small knowledge base), the bound holds. See `bound_for`.
SPREAD_RANK = 10
# Whether the 👍 of voters who did not say which source answered it follow those of the same answer who did (shared
# among the named pages as they were named) instead of crediting its main sources: every voter saw the same answer,
# and a named page is the best word on what in it helped. On the 1,300-question pool, with one voter in three naming
# the source, it lifts the voted questions +0.012 instead of +0.003 (12 worse instead of 21), as much as when all
# three name it; the harm to untouched questions is the same (-0.004). See docs/benchmarks.md, session 18.
NAMED_FOR_ALL = True
# Whether a search-only answer's main sources include, beside its top source, the sources of the sentences it quotes
# (lore.extract: "> sentence [n]" lines): what the reader took as the answer. A 👍 then credits them too, so a
# lenient voter's 👍 for a right page quoted from second place does not lift the top source past it.
QUOTED_MAIN = True
# A page lifted by near questions' feedback may not pass any of the query's best UNSEEN_GUARD documents that none
# of those questions' answers showed (0: no guard). See FeedbackIndex.moves.
UNSEEN_GUARD = 0

# What each voted, compared or corrected answer says about documents, precomputed when its feedback changes
# (refresh_evidence) so that a search only sums a few rows (the rules: the module docstring). An answer's `lead`
# is the source it led with: the first source a language model cited inline ([n], possibly in a group like
# [1, 3]), else its top source (first chunk of its context); its `main` sources are those it cited inline, else
# the lead. A 👍 whose voter picked the source that answered it (`picked`) credits that page instead. Evidence of
# a comparison is stored with the chosen answer. `feedback_answers` holds the question embeddings of answers with
# any evidence.
_EVIDENCE_SQL = r"""
WITH compared AS (
    SELECT chosen_id, rejected_id, count(*)::double precision AS n
    FROM comparisons WHERE chosen_id = ANY(%(ids)s) GROUP BY chosen_id, rejected_id
),
ans AS (
    SELECT a.id, a.answer, a.chunk_ids,
           CASE WHEN jsonb_typeof(a.citations) = 'array' THEN a.citations ELSE '[]'::jsonb END AS citations,
           a.model <> 'search-only' AND coalesce(a.generation->>'generated', 'true') <> 'false' AS generated
    FROM answers a
    WHERE a.id = ANY(%(ids)s) OR a.id IN (SELECT rejected_id FROM compared)
),
inline AS (
    SELECT ans.id AS answer_id, d.id AS document_id, (c->>'number')::int AS number,
           strpos(ans.answer, substring(ans.answer
               FROM '\[(?:\d+\s*[,;]\s*)*' || (c->>'number') || '(?:\s*[,;]\s*\d+)*\]')) AS pos
    FROM ans
    CROSS JOIN LATERAL jsonb_array_elements(ans.citations) c
    JOIN documents d ON d.uri = c->>'uri'
    WHERE ans.generated AND (c->>'number') ~ '^[0-9]+$'
),
lead AS (
    SELECT ans.id AS answer_id, coalesce(
        (SELECT i.document_id FROM inline i WHERE i.answer_id = ans.id AND i.pos > 0
         ORDER BY i.pos, i.number LIMIT 1),
        (SELECT ch.document_id FROM chunks ch WHERE ch.id = ans.chunk_ids[1])) AS document_id
    FROM ans
),
quoted AS (
    SELECT ans.id AS answer_id, d.id AS document_id
    FROM ans
    CROSS JOIN LATERAL regexp_matches(ans.answer, %(quote_line)s, 'gn') m
    JOIN LATERAL jsonb_array_elements(ans.citations) c ON c->>'number' = m[1]
    JOIN documents d ON d.uri = c->>'uri'
    WHERE %(quoted)s AND NOT ans.generated
),
main AS (
    SELECT answer_id, document_id FROM inline WHERE pos > 0
    UNION SELECT answer_id, document_id FROM quoted
    UNION SELECT answer_id, document_id FROM lead WHERE document_id IS NOT NULL
),
voted AS (
    SELECT v.answer_id, v.value, d.id AS picked
    FROM votes v
    LEFT JOIN source_picks p ON p.answer_id = v.answer_id AND p.user_id = v.user_id AND v.value > 0
    LEFT JOIN documents d ON d.uri = p.source_uri
    WHERE v.answer_id = ANY(%(ids)s)
),
scored AS (
    SELECT answer_id, count(*) + %(zz)s AS n,
           coalesce(sum(value) FILTER (WHERE picked IS NULL), 0)::double precision / (count(*) + %(zz)s) AS s
    FROM voted GROUP BY answer_id
),
picks AS (
    SELECT answer_id, picked AS document_id, count(*)::double precision AS k,
           sum(count(*)) OVER (PARTITION BY answer_id)::double precision AS picks
    FROM voted WHERE picked IS NOT NULL GROUP BY answer_id, picked
),
e AS (
    SELECT s.answer_id, m.document_id, s.s AS w, false AS named
    FROM scored s JOIN main m USING (answer_id)
    WHERE s.s > 0 AND NOT (%(follow)s AND EXISTS (SELECT 1 FROM picks p WHERE p.answer_id = s.answer_id))
    UNION ALL
    SELECT p.answer_id, p.document_id,
           p.k / s.n + CASE WHEN %(follow)s AND s.s > 0 THEN s.s * p.k / p.picks ELSE 0 END, false
    FROM picks p JOIN scored s USING (answer_id)
    UNION ALL
    SELECT s.answer_id, l.document_id, s.s, false FROM scored s JOIN lead l USING (answer_id)
    WHERE s.s < 0 AND l.document_id IS NOT NULL
    UNION ALL
    SELECT p.chosen_id, m.document_id, %(comparison)s * p.n / (p.n + 1), false
    FROM compared p JOIN main m ON m.answer_id = p.chosen_id
    UNION ALL
    SELECT p.chosen_id, l.document_id, -%(comparison)s * p.n / (p.n + 1), false
    FROM compared p JOIN lead l ON l.answer_id = p.rejected_id
    WHERE l.document_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM main m WHERE m.answer_id = p.chosen_id AND m.document_id = l.document_id)
    UNION ALL
    SELECT cr.answer_id, d.id, %(correction)s, true
    FROM critiques cr JOIN documents d ON d.uri = cr.source_uri
    WHERE cr.answer_id = ANY(%(ids)s)
)
INSERT INTO feedback_evidence (answer_id, document_id, w, named)
SELECT answer_id, document_id, sum(w), bool_or(named) FROM e
GROUP BY answer_id, document_id
HAVING sum(w) <> 0
"""
_REFRESH = (
    "DELETE FROM feedback_evidence WHERE answer_id = ANY(%(ids)s)",
    _EVIDENCE_SQL,
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
    params = {
        "ids": sorted(set(answer_ids)),
        "zz": WILSON_Z * WILSON_Z,
        "correction": CORRECTION_SCORE,
        "comparison": COMPARISON_SCORE,
        "follow": bool(NAMED_FOR_ALL),
        "quoted": bool(QUOTED_MAIN),
        "quote_line": QUOTE_LINE_SQL,
    }
    with conn.pipeline():
        for statement in _REFRESH:
            conn.execute(statement, params)
        conn.execute(_BUMP)


def refresh_all(conn: psycopg.Connection[Any]) -> None:
    """Recompute every answer's evidence (after a change of the rules or of their constants)."""
    ids = conn.execute(
        "SELECT answer_id FROM votes UNION SELECT answer_id FROM critiques WHERE source_uri IS NOT NULL"
        " UNION SELECT chosen_id FROM comparisons UNION SELECT answer_id FROM feedback_answers"
    ).fetchall()
    refresh_evidence(conn, [int(r[0]) for r in ids])


# Bumped in every transaction that changes evidence: searching processes reload their copy when it moves.
_BUMP = (
    "INSERT INTO feedback_state (id, version) VALUES (1, 1)"
    " ON CONFLICT (id) DO UPDATE SET version = feedback_state.version + 1"
)
_VERSION = "SELECT version FROM feedback_state WHERE id = 1"
_LOAD = """
SELECT f.answer_id, f.question_embedding, array_agg(e.document_id ORDER BY e.document_id),
       array_agg(e.w ORDER BY e.document_id), array_agg(e.named ORDER BY e.document_id), {shown}
FROM feedback_answers f JOIN feedback_evidence e ON e.answer_id = f.answer_id
GROUP BY f.answer_id
ORDER BY f.answer_id
"""
# The documents each answer showed (its sources), read only when the unseen-page guard needs them.
_SHOWN = """(SELECT coalesce(array_agg(DISTINCT ch.document_id), '{}') FROM answers a JOIN chunks ch
        ON ch.id = ANY(a.chunk_ids) WHERE a.id = f.answer_id)"""


def _load_sql() -> str:
    return _LOAD.format(shown=_SHOWN if UNSEEN_GUARD > 0 else "'{}'::bigint[]")


# How often a searching process asks whether the feedback changed elsewhere (feedback recorded in the same
# process is seen at once): a vote from another process moves this process's searches within this time.
CHECK_INTERVAL_S = 1.0
# The dtype of the question vectors search hands to `moves` (compared by identity: no conversion when it matches).
_FLOAT32 = np.dtype(np.float32)


class FeedbackIndex:
    """The feedback memory as the searching process holds it: the question embeddings of the answers with
    evidence (a matrix), and their evidence grouped by document (which questions say what about each one).

    A search compares the query with the past questions that have evidence about its candidates' documents
    only (a few dozen: one gathered product, then plain Python), instead of a second HNSW scan in PostgreSQL
    (about 4 ms, the cost that kept search from its latency goal) or a product over every past question.
    """

    def __init__(self) -> None:
        self.version: int | None = None
        self.checked_at = -math.inf
        self.stale = True
        self.lock = threading.Lock()
        self._load([])

    def fresh(self, now: float | None = None) -> bool:
        """Whether `refresh` would not look at the database at `now` (default: this moment): checked less than
        CHECK_INTERVAL_S before, and no feedback recorded in this process since."""
        at = time.monotonic() if now is None else now
        return not self.stale and at - self.checked_at < CHECK_INTERVAL_S

    def refresh(self, conn: psycopg.Connection[Any]) -> None:
        """Reload when the stored version moved (checked at most every CHECK_INTERVAL_S unless marked stale)."""
        now = time.monotonic()
        if self.fresh(now):
            return
        with self.lock:
            if self.fresh(now):
                return
            row = conn.execute(_VERSION).fetchone()
            version = int(row[0]) if row else 0
            if version != self.version:
                # The version and the rows from one snapshot: a concurrent change bumps past what was read.
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    row = conn.execute(_VERSION).fetchone()
                    version = int(row[0]) if row else 0
                    # Binary: as real[], every float would become a Python object (ten times slower to load).
                    # A connection with Lore's vector loaders (the search connection) hands over arrays; one
                    # without them, pgvector's binary form, which _load decodes all at once.
                    rows = conn.cursor(binary=True).execute(_load_sql()).fetchall()
                self._load(rows)
                self.version = version
            self.checked_at, self.stale = now, False

    def _load(self, rows: list[tuple[Any, ...]]) -> None:
        """Rows of (answer id, question embedding, document ids, weights, whether a correction named each
        document, the documents its answer showed), as _LOAD returns them: the embedding as pgvector's binary
        form (bytes) or as floats."""
        if rows and isinstance(rows[0][1], bytes | memoryview):
            matrix = decode_vectors([bytes(r[1]) for r in rows])
        else:
            matrix = np.array([r[1] for r in rows], dtype=np.float32).reshape(len(rows), EMBEDDING_DIM)
        # The evidence grouped by document, as plain lists: a search reads a few dozen entries, for which Python
        # beats numpy's per-call overhead.
        evidence: dict[int, tuple[list[int], list[float], list[bool]]] = {}
        shown = [frozenset(int(d) for d in r[5]) for r in rows]
        for row, (_, _, documents, weights, named, _) in enumerate(rows):
            for document, weight, by_name in zip(documents, weights, named, strict=True):
                questions, ws, names = evidence.setdefault(int(document), ([], [], []))
                questions.append(row)
                ws.append(float(weight))
                names.append(bool(by_name))
        # Swapped in at once: a search on another thread sees the old memory or the new one, never a mix.
        self._memory = _Memory(matrix, evidence, shown)

    @property
    def size(self) -> int:
        """How many past questions with evidence the index holds."""
        return len(self._memory.matrix)

    def adjustments(
        self, settings: Settings, qvec: np.ndarray, documents: Iterable[int] | Mapping[int, float] | None = None
    ) -> tuple[list[int], list[float]]:
        """(document ids, score adjustments) of `documents` (None: every document with evidence) for a query
        embedding; empty when no past question with evidence about them is near. Given as a mapping, `documents`
        holds each document's best cosine to the query (search has it), and evidence about a document holds only
        as far as the query itself finds it nearly as relevant as its best candidate (MATCH_MARGIN)."""
        moves = self.moves(settings, qvec, documents)
        docs = sorted(moves)
        return docs, [moves[d].amount for d in docs]

    def moves(
        self,
        settings: Settings,
        qvec: np.ndarray,
        documents: Iterable[int] | Mapping[int, float] | None = None,
        *,
        scores: Mapping[int, float] | None = None,
    ) -> dict[int, Move]:
        """Per document with near evidence, how far feedback moves it and, for a lift, what the near questions'
        answers showed (`adjustments` is this without the latter). Given the candidate documents' scores (search
        has them), no document moves further than they spread (`bound_for`); without them, `settings.feedback_weight`
        bounds the moves. The bound is worked out only when some evidence is near, which the usual search has not."""
        memory = self._memory
        evidence = memory.evidence
        if not evidence:
            return {}
        # Only the documents with evidence, each once (a mapping's keys are; any other iterable may repeat some).
        if documents is None:
            wanted = list(evidence)
        else:
            unique = documents if isinstance(documents, Mapping) else dict.fromkeys(documents)
            wanted = [d for d in unique if d in evidence]
        if not wanted:
            return {}
        rows = [row for document in wanted for row in evidence[document][0]]
        # Search hands over a float32 array already; converting costs a few microseconds after the statement's wait.
        q = qvec if isinstance(qvec, np.ndarray) and qvec.dtype is _FLOAT32 else np.asarray(qvec, dtype=np.float32)
        # Gathering copies the rows; past a share of the matrix one product over all of it is cheaper.
        # On one BLAS thread: see _single_threaded_blas.
        gather = len(rows) < GATHER_SHARE * len(memory.matrix)
        sims = (memory.matrix[rows] @ q if gather else (memory.matrix @ q)[rows]).tolist()
        threshold = float(min(settings.feedback_threshold, 0.999))
        near = {row: sim for row, sim in zip(rows, sims, strict=True) if sim >= threshold}
        if not near:  # the usual search: no past question with evidence about its candidates is near
            return {}
        if len(near) > NEIGHBORS:
            nearest = sorted(near, key=near.__getitem__, reverse=True)[:NEIGHBORS]
            near = {row: near[row] for row in nearest}
        span = max(RAMP_TOP - threshold, 1e-3)
        # Feedback reorders what the query itself finds plausible: a document moves fully when its best chunk
        # matches the query as well as the best candidate's, and not at all MATCH_MARGIN or more below that
        # (without the candidates' matches, fully).
        matches = documents if isinstance(documents, Mapping) and documents else None
        best = max(matches.values()) if matches is not None else 0.0
        doubt_for: dict[int, float] = {}  # per document, the chance that none of the evidence about it holds
        doubt_against: dict[int, float] = {}
        # Per lifted document, what its supporters' answers showed: only the unseen-page guard reads it.
        shown: dict[int, set[int]] = {}
        guarded = UNSEEN_GUARD > 0
        for document in wanted:
            questions, weights, names = evidence[document]
            plausible = 1.0
            if matches is not None:
                plausible = min(1.0, max(0.0, 1.0 - (best - matches[document]) / MATCH_MARGIN))
            for row, weight, named in zip(questions, weights, names, strict=True):
                sim = near.get(row)
                if sim is None:
                    continue
                same = min(1.0, (sim - threshold) / span)  # the chance that the past question asks the same
                # A correction that names the page holds whatever the query's match: the team said it is the
                # answer. Otherwise, the nearer the past question, the less the query's own sense of what is
                # plausible restrains it.
                share = 1.0 if named else plausible
                chance = same * math.tanh(GAIN * abs(weight)) * (same + (1.0 - same) * share)
                doubts = doubt_for if weight > 0 else doubt_against
                doubts[document] = doubts.get(document, 1.0) * (1.0 - chance)
                if guarded and weight > 0:  # a corrected answer showed the page its correction named
                    seen = shown.setdefault(document, set())
                    seen |= memory.shown[row]
                    if named:
                        seen.add(document)
        bound = bound_for(settings, () if scores is None else scores.values())
        # Any support from a near question vetoes the evidence against a document.
        out = {d: Move(bound * (1.0 - doubt), frozenset(shown.get(d, ()))) for d, doubt in doubt_for.items()}
        for d, doubt in doubt_against.items():
            if d not in out:
                out[d] = Move(-NEGATIVE_SHARE * bound * (1.0 - doubt), frozenset())
        return out


def bound_for(settings: Settings, page_scores: Iterable[float]) -> float:
    """How far feedback may move a document for this query: `settings.feedback_weight`, capped by the spread of the
    query's candidate documents' scores (each document's best, in any order): the best one's less the SPREAD_RANK-th
    best's, or the last one's when there are fewer (SPREAD_RANK)."""
    bound = float(settings.feedback_weight)
    if SPREAD_RANK <= 0:
        return bound
    scores = sorted(page_scores, reverse=True)
    if not scores:
        return bound
    return min(bound, scores[0] - scores[min(SPREAD_RANK, len(scores)) - 1])


class Move(NamedTuple):
    """How feedback moves one document for a query: `amount` is added to its score; for a lift, `shown` is the
    documents the supporting near questions' answers showed (a corrected answer: also the page its correction
    named)."""

    amount: float
    shown: frozenset[int]


class _Memory(NamedTuple):
    """What a FeedbackIndex holds: the question matrix and the evidence grouped by document."""

    matrix: np.ndarray  # one row per past question with evidence (unit vectors)
    # document id -> (question rows, evidence weights, whether a correction named the document)
    evidence: dict[int, tuple[list[int], list[float], list[bool]]]
    shown: list[frozenset[int]]  # per question row, the documents its answer showed (its sources)


@functools.cache
def _single_threaded_blas() -> None:
    """Run numpy's BLAS on one thread in a process that searches. A matrix-vector product this small gains
    nothing from BLAS threads, and their spinning after each call takes the cores from PostgreSQL. Limiting it
    per call re-resolves the libraries each time, so it is set once; nothing in a searching process needs BLAS
    threads (the embedder runs on ONNX Runtime's own pool)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


_indexes: dict[str, FeedbackIndex] = {}
_indexes_lock = threading.Lock()


def _key(settings: Settings) -> str:
    return f"{settings.database_url}|{settings.home}"


def note_feedback(settings: Settings) -> None:
    """Feedback was just recorded in this process: its searches see it from the next one on."""
    with _indexes_lock:
        index = _indexes.get(_key(settings))
    if index is not None:
        index.stale = True


def fresh_index(settings: Settings) -> FeedbackIndex | None:
    """This process's feedback index for the settings' database when it needs no look at the database now (None
    otherwise: then `feedback_index` with a connection). Saves a search finding its connection first."""
    index = _indexes.get(_key(settings))
    return index if index is not None and index.fresh() else None


def feedback_index(settings: Settings, conn: psycopg.Connection[Any]) -> FeedbackIndex:
    """This process's feedback index for the settings' database, brought up to date."""
    key = _key(settings)
    with _indexes_lock:
        index = _indexes.get(key)
        if index is None:
            _single_threaded_blas()
            index = _indexes[key] = FeedbackIndex()
    index.refresh(conn)
    return index
