"""Hybrid retrieval in PostgreSQL: HNSW vector search + full text, fused by score, with ACL filter and feedback.

One network round trip per search: searches run on connections of their own (one per thread; autocommit,
no ping before use, replaced when broken) that carry the session settings search needs (pgvector's iterative
index scan, custom plans), so a search is one prepared statement. Only a search asking for a different HNSW
candidate list first changes that connection's `hnsw.ef_search` (one statement before it), a hybrid search first has
PostgreSQL's parser split the question into its words (one short prepared statement, `fusion_for`), and a process
reads which words are frequent (below) once every FREQUENT_TTL_S. Vector mode has a connection of its own per thread
(opened when a thread first searches in that mode; it also brings the feedback memory up to date for that mode),
on which its statement runs on a cached plan instead of being planned again each time (`_vector_sql`).

- The permission filter `acl && visible` sits inside both candidate scans, so nothing outside the asker's
  view is ever a candidate. pgvector 0.8's iterative index scan (`relaxed_order`) keeps scanning the HNSW
  graph until enough rows pass a selective filter, so recall does not collapse for a small private channel.
- Full text ranks passages on every word of a plain question (OR), but a word that many passages use (from
  PostgreSQL's statistics of the column) does not make a passage a candidate by itself (`_MATCH`).
- Score fusion of the two candidate lists: every candidate of either list has its own score, its cosine similarity to
  the question plus the full-text weight (0.2) times its full-text score, the share of the question's words it uses
  with each word weighted by its rarity in the corpus (`_COVERAGE`, `coverage_weights`: inverse document frequency
  from PostgreSQL's statistics of the column); two thirds of that (0.675), plus a third (`FusionParams.page`, 0.325)
  of its page's similarity to the question (the page vector, documents.embedding, the normalized mean of the page's
  passage embeddings), is what the candidates are ranked on (`FUSION`, `fusion_for`). Within a page, passages thus
  rank on their own score alone. The page term lets a page that is about the question as a whole beat a page with one
  passage that merely shares its words (session 13: +0.037 MRR@10 over 26 question sets of the Python docs). A page
  of one passage has no page vector (it would count that passage's similarity twice): it counts its passage's
  similarity less the gap between the most similar candidate on a longer page and that page. Full text moves a
  passage by at most the weight: it decides between passages the embedding finds about equally close, and cannot
  carry a passage the embedding finds far off past one it finds close. The full-text score counts whether a passage
  uses a word, not how often (repeating words buys nothing), and a rare word ('nanosleep') for more than the
  everyday words around it ('make', 'program', 'wait'). Until session 15 it was ts_rank_cd, saturated as
  r / (r + 1), which weighs a common word like a rare one: on everyday wordings a wrong page that shared their common
  words moved up, and fresh12's everyday rephrasings (a blind set) fell 0.033 below vector search alone. With the
  share of words, hybrid MRR@10 over 34 question sets rises from 0.758 to 0.773, it is above the better single mode
  on every one of them (by 0.018 at least, where it was 0.034 below on one), and on eight blind sets written
  afterwards (fresh14 to fresh17) it rises on seven, by 0.014 to 0.062, and falls on one by 0.007, staying above the
  better single mode on all eight (docs/benchmarks.md, session 15). The cost: a
  short page made of exactly a question's words, with an embedding about as close as the right page's, can now rank
  above it (tests/search/test_fusion.py). Reciprocal rank fusion, used until session 10, could not tell close from
  far: a passage found by both lists beat the vector list's first passage whenever full text ranked it high; it fell
  below vector search alone on 13 of the 34 sets. Telling identifier questions (module.attr, snake_case, ENV_VARS,
  __dunders__, CamelCase, --flags, call(), "quoted", SomeError) from natural ones, which reciprocal rank fusion needed
  (0.7 against 0.1), no longer pays: their best weights are the same, and the two stay separate parameters for a
  corpus where they are not. The fused score is what a hit reports, as vector mode reports the cosine similarity
  itself, so the feedback memory's bound (`feedback_weight`) is in units of cosine similarity in both modes: feedback
  reorders passages the search finds about equally close, and needs strong evidence to move one past a passage much
  closer (when the scores were reciprocal ranks, where first and second place are 0.0003 apart however unequal the
  passages, the same evidence moved any candidate to the top, and harmed questions it did not concern:
  docs/benchmarks.md). Then one bounded adjustment: the feedback memory (lore.feedback_memory) of similar past
  questions about the candidates' documents, computed in this process once the candidates are back, and never larger
  than the spread of the query's own document scores (the best less the tenth: `feedback_memory.bound_for`), so
  feedback reorders what the query found and takes a page at most from its tenth place to first. Votes act there,
  for similar questions only: a query-independent prior from votes helps no question and costs the others
  (docs/benchmarks.md). With feedback_memory.UNSEEN_GUARD set, a lifted page does not pass the query's top pages that
  no answer lifting it showed (`_adjusted`; off by default).
- Near-duplicates (same text, or almost the same embedding) are collapsed to the best-scored one: candidates
  found by their embeddings' sign bits among the rows the collapse walks, confirmed on the embeddings
  themselves (`_kept_without_near_candidates`, then `_near_pairs`).
"""

from __future__ import annotations

import logging
import math
import operator
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import psycopg
import psycopg.sql

from lore import feedback_memory
from lore.config import Settings
from lore.db import DatabaseError, database_url, first_line, register_vectors
from lore.embeddings import get_embedder
from lore.feedback_memory import FeedbackIndex, Move, feedback_index, fresh_index
from lore.logs import kv
from lore.types import PUBLIC, SEARCH_MODES, Asker, Hit

log = logging.getLogger(__name__)

MODES = SEARCH_MODES
# How far below a document it may not pass a lifted document stops (a hair: the order is all that matters).
GUARD_GAP = 1e-9
# Cosine similarity above which two retrieved chunks count as the same passage.
NEAR_DUPLICATE_COSINE = 0.97
# A word is frequent, and does not by itself make a passage a full-text candidate (_MATCH), when more than this
# share of the passages, and more than FREQUENT_MIN_CHUNKS of them, use it. Ranking every passage with such a
# word is what made full text slow on a large corpus (on the whole Python docs, 13,373 passages, 'file' is in
# 22 % of them); the floor keeps small and middling knowledge bases as they were: with a floor of 100, the 60
# pages of bench/learning.py (1,721 passages) lost gold pages from the top 5. The shares come from PostgreSQL's
# statistics of the column (ANALYZE), read every FREQUENT_TTL_S.
FREQUENT_SHARE = 0.03
FREQUENT_MIN_CHUNKS = 500
FREQUENT_TTL_S = 300.0
# pgvector's default; raised when more candidates are asked for.
MIN_EF_SEARCH = 40
# The most candidates a scan is asked for when near-duplicates keep a search short of k (pgvector's hnsw.ef_search
# goes up to 1,000).
MAX_CANDIDATES = 1000

# Session settings of every search connection (these connections serve nothing else):
# - relaxed_order: pgvector 0.8's iterative index scan, so a selective ACL filter does not starve the scan;
# - force_custom_plan: statements are prepared (parsed once) but planned with each search's own values, since
#   a generic plan cannot see how selective this asker's ACL is and may pick a bitmap scan + sort of the table.
_SESSION_SQL = "SET hnsw.iterative_scan = relaxed_order; SET plan_cache_mode = force_custom_plan"
# Vector mode's connections: the same iterative scan, and PostgreSQL's plan cache at its default. A custom plan is
# planned again on every search (0.05 ms, a tenth of the bare HNSW query that vector mode is measured against);
# vector mode's statement carries everything its plan depends on in its text (`_vector_sql`), so the plan cached
# for that text after five searches is the one each search would plan for itself.
_VECTOR_SESSION_SQL = "SET hnsw.iterative_scan = relaxed_order; SET plan_cache_mode = auto"
# One connection per thread and process, opened on first use and replaced as soon as it breaks (a server
# restart costs the searches in flight, never the ones after it: no background reconnect with back-off).
_local = threading.local()
_ef_search: weakref.WeakKeyDictionary[psycopg.Connection[Any], int] = weakref.WeakKeyDictionary()


def _connect(url: str, *, vector: bool = False) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="lore-search")
    try:
        register_vectors(conn)
    except psycopg.ProgrammingError as exc:  # no vector type: the extension (and the tables) are not there yet
        conn.close()
        raise DatabaseError("the database is not migrated: run `lore db upgrade`") from exc
    conn.execute(_VECTOR_SESSION_SQL if vector else _SESSION_SQL)
    _ef_search[conn] = MIN_EF_SEARCH
    return conn


def _connection(settings: Settings, *, vector: bool = False) -> psycopg.Connection[Any]:
    """This thread's search connection (`vector`: the one vector mode's statement runs on)."""
    url = database_url(settings)
    key = (os.getpid(), url, vector)
    conn: psycopg.Connection[Any] | None = getattr(_local, "conns", {}).get(key)
    if conn is None or conn.closed or conn.broken:
        if not hasattr(_local, "conns"):
            _local.conns = {}
        conn = _local.conns[key] = _connect(url, vector=vector)
    return conn


def _discard(settings: Settings, *, vector: bool = False) -> None:
    conns = getattr(_local, "conns", {})
    conn = conns.pop((os.getpid(), database_url(settings), vector), None)
    if conn is not None:
        conn.close()


class SearchError(ValueError):
    """A search request is invalid (unknown mode, bad k)."""


class ScoredHit(NamedTuple):
    """A hit with the signals the agent needs to judge relevance (a named tuple, like Hit)."""

    hit: Hit
    similarity: float | None  # cosine similarity of the chunk to the query (None without an embedding)
    fulltext: bool  # matched the full-text query
    feedback: float  # the feedback-memory adjustment that was added
    page: float | None = None  # cosine similarity of the chunk's page vector to the query (hybrid; None without one)
    words: float | None = None  # hybrid: the rarity-weighted share of the question's words it uses (`_COVERAGE`)


# The vector list of a hybrid search: the HNSW scan's nearest candidates (their scores come from the fusion).
_VECTOR_CTE = """vec AS MATERIALIZED (
    SELECT id FROM chunks WHERE acl && %(acl)s::text[]
    ORDER BY embedding <=> %(qvec)s LIMIT %(n)s
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
# Which passages are full-text candidates. For a plain question (no operators, no quoted phrase: those keep the
# relaxed websearch query), the OR of its words minus the frequent ones (`%(frequent)s`, see _frequent_lexemes):
# a word that a large share of the passages use says little about which one answers, and matching it made the
# server rank thousands of passages (23 ms a search on the Python docs, 4 ms without). If every word is frequent,
# all of them must match (websearch's AND). Candidates are still ranked on every word (_TSQUERY). `ts_delete` and
# `strip` keep it an expression of the parameters: tsvector text is quoted lexemes separated by single spaces, and
# a lexeme holds no space, so "' '" only ever separates two of them.
_MATCH = (
    f"(CASE WHEN websearch_to_tsquery('english', %(q)s)::text ~ '[!|]' OR strpos(%(q)s, '\"') > 0 THEN {_TSQUERY}"
    " ELSE coalesce(nullif(replace(strip(ts_delete(to_tsvector('english', %(q)s), string_to_array(%(frequent)s, ' ')))"
    "::text,"
    " ''' ''', ''' | '''), '')::tsquery, websearch_to_tsquery('english', %(q)s)) END)"
)
# Each full-text candidate's rank (ts_rank_cd: `r`), for score fusion.
_FULLTEXT_CTE = f"""fts AS MATERIALIZED (
    SELECT id, row_number() OVER (ORDER BY r DESC, id) AS rank, r FROM (
        SELECT c.id, ts_rank_cd(c.tsv, {_TSQUERY}) AS r
        FROM chunks c
        WHERE c.tsv @@ {_MATCH} AND c.acl && %(acl)s::text[]
        ORDER BY r DESC LIMIT %(n)s
    ) f
)"""

# Candidates carry the sign bits of their embedding (pgvector's binary_quantize: 48 bytes, where the embedding
# is 1,536) for `_collapse` to find near-duplicate candidates.
_SELECT_HIT = """c.id, c.document_id, c.uri, c.title, c.heading, c.text, c.text_hash,
       binary_quantize(c.embedding)"""

# Vector mode: the HNSW scan's rows as they are (a chunk carries its document's uri and title), ranked and
# scored in Python (`_vector_rows`): no join, window or sort around the scan, which cost a third of the
# statement's time. A template: `_vector_sql` writes the asker's ACL, the row count and the HNSW candidate list
# into it.
_VECTOR_SQL = """SELECT id, document_id, uri, title, heading, text, text_hash, binary_quantize(embedding),
       embedding <=> %(qvec)s AS dist
FROM chunks WHERE acl && {acl}::text[]
ORDER BY embedding <=> %(qvec)s LIMIT {n} /* hnsw.ef_search {ef} */"""
# Statement texts by (ACL, rows, ef_search): a few per deployment (one per channel asked in, and per DM asker).
_vector_sqls: dict[tuple[tuple[str, ...], int, int], str] = {}
_VECTOR_SQLS_MAX = 512


def _vector_sql(acl: Sequence[str], n: int, ef_search: int) -> str:
    """Vector mode's statement for this ACL, row count and HNSW candidate list. They are written into its text,
    not sent as parameters, because the plan depends on them: how selective the ACL is decides between the HNSW
    scan and an exact one (see tests/search/test_selective_filter.py), and pgvector's cost estimate reads
    hnsw.ef_search. Only the query vector is a parameter, which no plan depends on. So the plan PostgreSQL
    caches for a text (its generic plan, which it uses once it costs no more than the five custom plans before
    it) is the plan a search would make for itself, and a search skips planning. The ACL is quoted by psycopg
    (`sql.Literal`), as for any literal. psycopg prepares a text after five searches (`_run`), and PostgreSQL
    caches its plan after five more."""
    key = (tuple(acl), n, ef_search)
    text = _vector_sqls.get(key)
    if text is None:
        if len(_vector_sqls) >= _VECTOR_SQLS_MAX:
            _vector_sqls.clear()
        literal = psycopg.sql.Literal(list(key[0])).as_string(None)
        text = _vector_sqls[key] = _VECTOR_SQL.format(acl=literal, n=int(n), ef=int(ef_search))
    return text


# A candidate's full-text score in hybrid search: the share of the question's words it uses, each word weighted by
# how rare it is in the corpus (`coverage_weights`: the weights sum to 1, so the score is between 0 and 1). Whether a
# passage uses a word, not how often: repeating a word buys nothing. Scored for every candidate of either list, one
# single-lexeme tsquery per word (`%(lexemes)s`, quoted in Python: `tsquery_literal`) tested against the passage's
# tsvector, which is a binary search, not a parse.
_COVERAGE = """(SELECT coalesce(sum(q.w), 0) FROM unnest(%(lexemes)s::tsquery[], %(weights)s::float8[]) q(l, w)
    WHERE c.tsv @@ q.l)"""


def build_query(*, mode: str) -> str:
    """The search statement for a mode. It returns every candidate (not just the top k), scored, in order: the
    feedback memory's adjustments of the candidates' documents are added afterwards, in Python (`search_scored`).
    A row is (id, document_id, uri, title, heading, text, text_hash, sign bits, score, similarity, is_fts, page
    similarity, share of the question's words), and `_adjusted` appends the feedback term; vector mode's rows are
    brought to it by `_vector_rows`.
    Hybrid scores the union of both candidate lists by the passage's own score, its cosine similarity plus the
    full-text weight `%(ftw)s` times its rarity-weighted share of the question's words (`_COVERAGE`, see
    `fusion_for`), mixed with its page's similarity (the share `%(page)s`): within a page, passages rank on their own
    score alone. Full-text mode scores the saturated full-text rank r / (r + `%(saturation)s`) alone (r: ts_rank_cd);
    vector mode returns the scan's rows for `_vector_rows` to score."""
    if mode == "vector":
        return _VECTOR_SQL  # a template: see _vector_sql
    similarity = "1 - (c.embedding <=> %(qvec)s)"
    if mode == "fulltext":
        return f"""WITH {_FULLTEXT_CTE}
SELECT {_SELECT_HIT}, f.r / (f.r + %(saturation)s::float8) AS score, {similarity} AS similarity, true AS is_fts,
       NULL::float8 AS page_similarity, NULL::float8 AS coverage
FROM fts f JOIN chunks c ON c.id = f.id
ORDER BY f.rank"""
    # One join to chunks and one to the candidates' documents (their page vectors), one distance each per candidate
    # (LATERAL), for the union of both lists. A document without a page vector (one passage) counts its passage's
    # similarity less the gap between the most similar candidate on a longer page and that page (`gap`): a page
    # that is all passage would otherwise score its passage's full similarity twice, where the best passage of a
    # longer page stands above its page (the keyword-stuffed page of tests/search/test_fusion.py beat the real one).
    return f"""WITH {_VECTOR_CTE}, {_FULLTEXT_CTE},
cand AS MATERIALIZED (
    SELECT {_SELECT_HIT}, s.similarity, 1 - (d.embedding <=> %(qvec)s) AS page_similarity,
           f.id IS NOT NULL AS is_fts, {_COVERAGE} AS coverage
    FROM (SELECT id FROM vec UNION SELECT id FROM fts) u
    JOIN chunks c ON c.id = u.id
    JOIN documents d ON d.id = c.document_id
    LEFT JOIN fts f ON f.id = u.id
    CROSS JOIN LATERAL (SELECT {similarity} AS similarity) s
),
gap AS (
    SELECT similarity - page_similarity AS g FROM cand WHERE page_similarity IS NOT NULL
    ORDER BY similarity DESC, id LIMIT 1
)
SELECT id, document_id, uri, title, heading, text, text_hash, binary_quantize,
       (1 - %(page)s::float8) * (similarity + %(ftw)s::float8 * coverage)
         + %(page)s::float8 * coalesce(page_similarity, similarity - gap.g, similarity) AS score,
       similarity, is_fts, page_similarity, coverage
FROM cand LEFT JOIN gap ON true
ORDER BY score DESC, id"""


def _vector_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The HNSW scan's rows in the layout of the other modes, scored by their cosine similarity to the query. The
    iterative scan (relaxed_order) may return rows slightly out of order, so they are ranked again here."""
    out = []
    for row in sorted(rows, key=_DISTANCE_ID):
        similarity = 1.0 - float(row[8])
        out.append((*row[:8], similarity, similarity, False, None, None))
    return out


# Vector mode's rows ranked by distance, then id (a C key function: the rows are sorted after the wait, when
# every Python call counts).
_DISTANCE_ID = operator.itemgetter(8, 0)


def _feedback_index(settings: Settings, *, vector: bool = False) -> FeedbackIndex:
    """This process's feedback memory, brought up to date on the search connection (`vector`: vector mode's; a
    query at most once a second, or after feedback recorded in this process)."""
    index = fresh_index(settings)
    if index is not None:
        return index
    try:
        return feedback_index(settings, _connection(settings, vector=vector))
    except psycopg.OperationalError:
        _discard(settings, vector=vector)  # a broken connection (server restart): one retry on a fresh one
        try:
            return feedback_index(settings, _connection(settings, vector=vector))
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"cannot reach the database for search: {first_line(exc)}") from exc


_FREQUENT_SQL = """
SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, c.reltuples
FROM pg_stats s JOIN pg_class c ON c.relname = s.tablename AND c.relnamespace = s.schemaname::regnamespace
WHERE s.schemaname = current_schema() AND s.tablename = 'chunks' AND s.attname = 'tsv'
"""


class CorpusWords(NamedTuple):
    """What PostgreSQL's statistics of chunks.tsv say about words (all empty before the first ANALYZE)."""

    frequent: str  # the lexemes too common to make a candidate alone, separated by spaces, as the statement takes them
    shares: dict[str, float]  # lexeme -> share of the passages using it, for the most common lexemes
    floor: float  # the smallest share listed: a lexeme not listed is rarer than this


_NO_WORDS = CorpusWords("", {}, 0.0)
# (pid, database url) -> (when read, the words): one read of the statistics per process and interval.
_frequent: dict[tuple[int, str], tuple[float, CorpusWords]] = {}


def _corpus_words(settings: Settings) -> CorpusWords:
    """The corpus's word statistics, read at most once every FREQUENT_TTL_S (see CorpusWords)."""
    key = (os.getpid(), database_url(settings))
    now = time.monotonic()
    cached = _frequent.get(key)
    if cached is not None and now - cached[0] < FREQUENT_TTL_S:
        return cached[1]
    try:
        row = _connection(settings).execute(_FREQUENT_SQL).fetchone()
    except psycopg.OperationalError:
        _discard(settings)  # the search itself reconnects (or reports the database unreachable)
        return _NO_WORDS
    except psycopg.Error as exc:  # statistics this role may not read: every word counts, as before
        log.warning(kv("frequent_words_unavailable", error=type(exc).__name__))
        row = None
    words = _NO_WORDS
    if row is not None and row[0] is not None:
        elements, shares, rows = row
        # the shares end with 3 summary values: zip stops at the last element
        listed = {str(lexeme): float(share) for lexeme, share in zip(elements, shares, strict=False)}
        frequent = " ".join(
            sorted(
                lex
                for lex, share in listed.items()
                if share > FREQUENT_SHARE and share * float(rows) > FREQUENT_MIN_CHUNKS
            )
        )
        words = CorpusWords(frequent, listed, min(listed.values(), default=0.0))
    _frequent[key] = (now, words)
    return words


def _frequent_lexemes(settings: Settings) -> str:
    """The lexemes too common to make a passage a full-text candidate alone (FREQUENT_SHARE), from the column
    statistics PostgreSQL keeps for chunks.tsv (none before the table was first analyzed: then every word of a
    question counts, as it always did). One string, split on spaces in SQL (a lexeme has none): as a text[]
    parameter, a few hundred of them cost 0.17 ms more per search to send."""
    return _corpus_words(settings).frequent


# What makes a question want full text: a token shaped like code or a quoted string (module.attr, snake_case,
# ENV_VARS, __dunders__, CamelCase, --flags, call(), "quoted", SomeError). All-capital words count only from six
# letters (SIGWINCH, PYTHONMALLOC): shorter ones (JSON, UUID, ASCII) are as often plain words of a question.
_IDENTIFIER = re.compile(
    r"""
      (?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?![\w.])   # dotted.name
    | \b[A-Za-z0-9]+_[A-Za-z0-9_]+\b                        # snake_case, ENV_VAR, O_NONBLOCK
    | \b__\w+__\b                                          # __dunder__
    | \b[A-Z]?[a-z0-9]+(?:[A-Z][a-z0-9]*)+\b                # CamelCase, camelCase
    | \b[A-Z]{2,}[a-z]{2,}\w*                               # HTTPStatus
    | (?<![\w-])--?[A-Za-z][\w-]*                           # -X, --flag
    | \b[A-Z][A-Z0-9]{5,}\b                                 # SIGWINCH, PYTHONHASHSEED
    | \b\w+\(\)                                             # call()
    | `[^`]+`|"[^"]{2,}"|'[^'\s]{2,}[^']*'                  # quoted
    | \b[A-Z]\w*(?:Error|Exception|Warning)\b               # exception names
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class QueryProfile:
    """What the fusion reads from a question's text (the rest comes from the corpus statistics)."""

    identifiers: tuple[str, ...]  # the tokens shaped like code or quoted strings


def query_profile(query: str) -> QueryProfile:
    return QueryProfile(tuple(m.group(0) for m in _IDENTIFIER.finditer(query)))


@dataclass(frozen=True)
class FusionParams:
    """The few numbers of query-aware fusion (see the module docstring; fitted by bench/fusion.py)."""

    natural: float = 0.2  # full-text weight (in cosine similarity) of a natural-language question
    identifier: float = 0.2  # full-text weight of a question that names an identifier or quotes a string
    page: float = 0.325  # share of the score that is the page's similarity (documents.embedding), not the passage's

    def fulltext_weight(self, profile: QueryProfile) -> float:
        return self.identifier if profile.identifiers else self.natural


# The parameters in use, chosen by bench/fusion.py on the pooled question sets (docs/benchmarks.md).
FUSION = FusionParams()
# Full-text mode ranks passages by their saturated full-text rank r / (r + FULLTEXT_SATURATION) (r: ts_rank_cd).
FULLTEXT_SATURATION = 1.0


def lexeme_shares(settings: Settings) -> dict[str, Any]:
    """{"shares": {lexeme: share of passages}, "floor": smallest share listed} (bench/fusion.py replays with it)."""
    words = _corpus_words(settings)
    return {"shares": words.shares, "floor": words.floor}


def coverage_weights(lexemes: Sequence[str], shares: Mapping[str, float], floor: float) -> list[float]:
    """Each of the question's lexemes' weight in a passage's full-text score (`_COVERAGE`): its inverse document
    frequency, log(1 + (1 - s) / s) with s the share of the passages using it, normalized so that the weights sum
    to 1. A lexeme the statistics do not list is rarer than the least common one they do (`floor`); without
    statistics (a table never analyzed) every lexeme weighs the same. So a passage that shares only the common
    words of an everyday question ('make', 'program') scores little, and one that shares its rare word scores
    much, where ts_rank_cd counted every word alike."""
    if not lexemes:
        return []
    if not shares:
        return [1.0 / len(lexemes)] * len(lexemes)
    idf = [math.log1p((1.0 - s) / s) for s in (min(max(shares.get(lex, floor), 1e-6), 0.999) for lex in lexemes)]
    total = sum(idf)
    return [w / total for w in idf]


def tsquery_literal(lexeme: str) -> str:
    """A tsquery of this one lexeme, as text: quoted, with quotes doubled and backslashes escaped (PostgreSQL's
    tsquery input syntax), so no character of the lexeme is read as an operator and nothing is parsed again."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


class Fusion(NamedTuple):
    """One hybrid search's fusion: the full-text weight, the page share, and the question's weighted lexemes."""

    ftw: float  # the most full text adds to a candidate's cosine similarity (for a passage with every word)
    page: float  # the share of a candidate's score that is its page vector's similarity
    lexemes: list[str]  # the question's lexemes, as single-lexeme tsqueries (`tsquery_literal`)
    weights: list[float]  # their weights (`coverage_weights`)


_LEXEMES_SQL = "SELECT tsvector_to_array(to_tsvector('english', %s))"


def fusion_for(settings: Settings, query: str, *, params: FusionParams | None = None) -> Fusion:
    """How this question's full-text and vector lists are fused (FUSION, or `params`): its lexemes come from
    PostgreSQL's own parser (one short prepared statement), their shares from the cached column statistics."""
    params = params or FUSION
    words = _corpus_words(settings)
    try:
        row = _connection(settings).execute(_LEXEMES_SQL, (query,), prepare=True).fetchone()
    except psycopg.OperationalError:
        _discard(settings)  # the search itself reconnects (or reports the database unreachable)
        row = None
    lexemes = [str(lex) for lex in row[0]] if row is not None else []
    weights = coverage_weights(lexemes, words.shares, words.floor)
    return Fusion(
        params.fulltext_weight(query_profile(query)), params.page, [tsquery_literal(lex) for lex in lexemes], weights
    )


def candidate_count(k: int, mode: str) -> int:
    """How many candidates each scan returns: in vector mode a margin for de-duplication and for the feedback
    memory to promote from (half of k, at least 5; `search_scored` asks again for twice as many in the rare search
    whose collapse leaves fewer than k), in the other modes more, for the fusion to work with."""
    return k + max(5, k // 2) if mode == "vector" else max(3 * k, 30)


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
    n = candidate_count(k, mode)
    params: dict[str, Any] = {"qvec": qvec, "q": query, "acl": visible_acl(asker), "n": n}
    if mode != "vector":
        params["frequent"] = _frequent_lexemes(settings)
        if mode == "hybrid":
            params.update(fusion_for(settings, query)._asdict())
        else:
            params["saturation"] = FULLTEXT_SATURATION
    sql = build_query(mode=mode)
    while True:
        # The HNSW candidate list: at least the rows asked for, and twice k, which keeps a deep search's recall
        # where it was when vector mode asked for 2k rows.
        ef_search = max(MIN_EF_SEARCH, params["n"], 2 * k)
        if mode == "vector":
            sql = _vector_sql(params["acl"], params["n"], ef_search)
        rows = _candidates(settings, sql, params, mode, ef_search=ef_search)
        found = len(rows)
        if use_feedback and rows:
            index = _feedback_index(settings, vector=mode == "vector")
            if index.size:
                moves = index.moves(settings, qvec, _document_matches(rows), scores=_document_scores(rows))
                if moves:
                    rows = _adjusted(rows, moves)
        hits = _collapse(rows, k, lambda ids: _embeddings(settings, ids))
        # The collapse left fewer than k although the scans may hold more: ask again for twice as many.
        if len(hits) >= k or found < params["n"] or params["n"] >= MAX_CANDIDATES:
            return hits
        params["n"] = min(2 * params["n"], MAX_CANDIDATES)


def _candidates(
    settings: Settings, sql: str, params: dict[str, Any], mode: str, *, ef_search: int
) -> list[tuple[Any, ...]]:
    """The search statement's rows, scored (vector mode: ranked here, `_vector_rows`)."""
    vector = mode == "vector"
    try:
        rows = _run(settings, sql, params, ef_search=ef_search, vector=vector)
    except psycopg.OperationalError:
        # The server closed this connection (restart, idle timeout): one retry on a fresh one.
        _discard(settings, vector=vector)
        rows = _run(settings, sql, params, ef_search=ef_search, vector=vector)
    return _vector_rows(rows) if vector else rows


def _document_matches(rows: list[tuple[Any, ...]]) -> dict[int, float]:
    """Each candidate document's best cosine similarity to the query (over its candidate chunks)."""
    best: dict[int, float] = {}
    for row in rows:
        document, similarity = int(row[1]), float(row[9])
        if similarity > best.get(document, -2.0):
            best[document] = similarity
    return best


def _document_scores(rows: list[tuple[Any, ...]]) -> dict[int, float]:
    """Each candidate document's score (its best candidate chunk's), best first (rows come ranked by score)."""
    best: dict[int, float] = {}
    for row in rows:
        best.setdefault(int(row[1]), float(row[8]))
    return best


def _adjusted(rows: list[tuple[Any, ...]], moves: Mapping[int, Move]) -> list[tuple[Any, ...]]:
    """Rows with each document's feedback move added to the score (and reported), ranked again. A lifted document
    does not pass any of the query's best UNSEEN_GUARD documents that the answers lifting it never showed: it
    stops just below the lowest-scored of those above it (feedback_memory.UNSEEN_GUARD; 0, the default: off)."""
    ceilings = _ceilings(rows, moves) if feedback_memory.UNSEEN_GUARD > 0 else {}
    out = []
    for row in rows:
        move = moves.get(int(row[1]))
        adj = move.amount if move is not None else 0.0
        score = float(row[8])
        ceiling = ceilings.get(int(row[1]))
        if ceiling is not None and adj > 0:
            adj = max(0.0, min(adj, ceiling - score))
        # the statement's columns after the score as they are, then the feedback term
        out.append((*row[:8], score + adj, *row[9:], adj))
    out.sort(key=lambda r: (-r[8], r[0]))
    return out


def _ceilings(rows: list[tuple[Any, ...]], moves: Mapping[int, Move]) -> dict[int, float]:
    """Per lifted document with a guard, the score it may rise to: just below the lowest-scored of the query's
    best UNSEEN_GUARD documents (before feedback) above it that its supporters' answers did not show."""
    best = _document_scores(rows)
    guarded = list(best.items())[: feedback_memory.UNSEEN_GUARD]
    ceilings = {}
    for document, move in moves.items():
        if move.amount <= 0 or document not in best:
            continue
        above = [score for d, score in guarded if d != document and d not in move.shown and score > best[document]]
        if above:
            ceilings[document] = min(above) - GUARD_GAP
    return ceilings


def _run(
    settings: Settings, sql: str, params: dict[str, Any], *, ef_search: int, vector: bool = False
) -> list[tuple[Any, ...]]:
    """Run the search statement on this thread's search connection (`vector`: vector mode's)."""
    try:
        conn = _connection(settings, vector=vector)
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to the database for search: {first_line(exc)}") from exc
    # Binary results: numbers, and the sign bits as raw bytes, arrive without text to parse.
    cur = conn.cursor(binary=True)
    _set_ef_search(conn, ef_search)
    # Vector mode's texts differ by ACL (`_vector_sql`): psycopg prepares a text once it has run five times
    # (prepare=None), so an ACL seen once (a DM asker's) is parsed with its search, about what planning it cost
    # before, and does not push the frequent ones out of the 100 statements psycopg keeps prepared.
    return cur.execute(sql, params, prepare=None if vector else True).fetchall()


def _set_ef_search(conn: psycopg.Connection[Any], ef_search: int) -> None:
    """Widen (or narrow back) the connection's HNSW candidate list, only when it changes (a round trip)."""
    if _ef_search.get(conn) != ef_search:
        conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef_search),))
        _ef_search[conn] = ef_search


# Near-duplicates are found in two steps. Two embeddings with cosine >= NEAR_DUPLICATE_COSINE (an angle of at
# most 14.1 degrees) disagree in few of their 384 sign bits: at most 38 (p99 28) over 1,165 such pairs of real
# chunks and their edited copies, at most 32 among the near-duplicates found in the chunks themselves (Python
# docs, bench/near_duplicates.py), where chunks that merely share a topic disagree in far more. So pairs within
# SIGN_BITS_APART bits (a margin over that worst case), whose angles to the query differ by no more than the
# largest angle between near-duplicates (the triangle inequality), are candidates; only those are compared
# exactly, on their embeddings, fetched in a second round trip (in a fifth of vector searches on those docs).
SIGN_BITS_APART = 50
# Chunk ids -> their unit embeddings, for the candidate pairs (`_embeddings` on the search connection).
FetchEmbeddings = Callable[[list[int]], dict[int, np.ndarray]]
_NEAR_ANGLE = math.acos(NEAR_DUPLICATE_COSINE)


def _near_pairs(rows: list[tuple[Any, ...]], fetch: FetchEmbeddings) -> dict[int, list[int]]:
    """For each row index, the later rows that are near-duplicates of it (usually none)."""
    signs = [_sign_bits(row) for row in rows]
    candidates = [
        (i, j)
        for i in range(len(rows))
        for j in range(i + 1, len(rows))
        if (signs[i] ^ signs[j]).bit_count() <= SIGN_BITS_APART and _angles_allow(rows[i], rows[j])
    ]
    if not candidates:
        return {}
    vectors = fetch(sorted({int(rows[i][0]) for pair in candidates for i in pair}))
    near: dict[int, list[int]] = {}
    for i, j in candidates:
        a, b = vectors.get(int(rows[i][0])), vectors.get(int(rows[j][0]))
        if a is not None and b is not None and float(a @ b) >= NEAR_DUPLICATE_COSINE:
            near.setdefault(i, []).append(j)
    return near


def _collapse(rows: list[tuple[Any, ...]], k: int, fetch: FetchEmbeddings) -> list[ScoredHit]:
    """Keep the best of each group of near-duplicates (same text hash, or embeddings almost identical).
    `fetch(ids)` returns {chunk id: unit embedding} for the few candidates that need an exact comparison."""
    if not rows:
        return []
    kept = _kept_without_near_candidates(rows, k)
    if kept is None:  # some pair needs an exact comparison
        kept = _kept(rows, k, _near_pairs(rows, fetch))
    return [_scored_hit(rows[i]) for i in kept]


def _kept(rows: list[tuple[Any, ...]], k: int, near: dict[int, list[int]]) -> list[int]:
    """Indexes of the rows the collapse keeps, best first: a row is dropped when its text hash was seen or a
    kept row is its near-duplicate (`near`: row index -> later near-duplicate rows)."""
    hidden: set[int] = set()  # near a row already kept
    kept: list[int] = []
    seen_hashes: set[str] = set()
    for i, row in enumerate(rows):
        if i in hidden or row[6] in seen_hashes:
            continue
        seen_hashes.add(row[6])
        hidden.update(near.get(i, ()))
        kept.append(i)
        if len(kept) == k:
            break
    return kept


def _kept_without_near_candidates(rows: list[tuple[Any, ...]], k: int) -> list[int] | None:
    """`_kept` for the usual search, where no row walked is a near-duplicate candidate of a row kept before it:
    then only the text hashes drop rows, and nothing needs the embeddings. Only the pairs the walk meets are
    tested (each row against the rows kept so far: about k * k / 2 pairs, not every pair of candidates). None as
    soon as one pair is a candidate: the caller then compares every candidate pair exactly (`_near_pairs`)."""
    kept: list[int] = []
    signs: list[int] = []  # of the kept rows, in the same order
    seen_hashes: set[str] = set()
    apart = SIGN_BITS_APART
    for i, row in enumerate(rows):
        if row[6] in seen_hashes:
            continue
        sign = _sign_bits(row)
        for j, other in enumerate(signs):  # about k * k / 2 tests per search, so the loop is kept lean
            if (sign ^ other).bit_count() <= apart and _angles_allow(rows[kept[j]], row):
                return None
        seen_hashes.add(row[6])
        kept.append(i)
        signs.append(sign)
        if len(kept) == k:
            break
    return kept


def _sign_bits(row: tuple[Any, ...]) -> int:
    """A candidate's embedding sign bits as one integer (binary bit(384): a 4-byte length, then the bits)."""
    return int.from_bytes(bytes(row[7])[4:], "big")


def _angles_allow(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether two rows' angles to the query allow them to be near-duplicates (an unknown angle allows it)."""
    if a[9] is None or b[9] is None:
        return True
    angle_a = math.acos(min(1.0, max(-1.0, float(a[9]))))
    angle_b = math.acos(min(1.0, max(-1.0, float(b[9]))))
    return abs(angle_a - angle_b) <= _NEAR_ANGLE + 1e-6


def _scored_hit(row: tuple[Any, ...]) -> ScoredHit:
    chunk_id, document_id, uri, title, heading, text, _, _, score, similarity, is_fts, page, words = row[:13]
    # Positional: k of these are built after every search's reply, and keywords cost twice as much.
    hit = Hit(chunk_id, document_id, uri, title, heading, text, round(float(score), 6))
    adj = float(row[13]) if len(row) > 13 else 0.0  # the feedback term, when `_adjusted` added one
    return ScoredHit(
        hit,
        None if similarity is None else float(similarity),
        bool(is_fts),
        adj,
        None if page is None else float(page),
        None if words is None else float(words),
    )


def _embeddings(settings: Settings, ids: list[int]) -> dict[int, np.ndarray]:
    """Unit embeddings of these chunks, on this thread's search connection (one round trip). If that fails, none:
    the pairs are then not collapsed (a passage may show twice), and the search itself still answers."""
    sql = "SELECT id, embedding FROM chunks WHERE id = ANY(%s)"
    try:
        rows = _connection(settings).cursor(binary=True).execute(sql, (ids,), prepare=True).fetchall()
    except psycopg.OperationalError as exc:
        _discard(settings)
        log.warning(kv("near_duplicate_check_failed", error=type(exc).__name__))
        return {}
    out = {}
    for chunk_id, vector in rows:
        v = np.asarray(vector, dtype=np.float32)
        out[int(chunk_id)] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


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
