"""Query-aware fusion: how much full text counts follows the question (identifiers and rare words: more; natural
questions: less), on the weighting itself and end to end on a few real Python documentation pages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from lore.config import Settings
from lore.db import get_engine, raw_connection
from lore.models import TABLES
from lore.search import FUSION, FusionParams, coverage_weights, query_profile, search_scored, tsquery_literal
from tests.feedback.helpers import add_doc

DOCS = Path("/usr/share/doc/python3.11/html/library")
PAGES = ["secrets", "shlex", "textwrap", "heapq", "bisect", "glob", "fnmatch", "tempfile", "getpass", "colorsys"]

IDENTIFIER_QUERIES = [
    "itertools.groupby",
    "token_urlsafe for a reset link",
    "What does PYTHONDONTWRITEBYTECODE do?",
    "When is __init_subclass__ called?",
    "python -m venv --system-site-packages",
    "HTTPStatus IM_A_TEAPOT",
    "RecursionError: maximum recursion depth exceeded",
    'what does "address already in use" mean',
    "functools.cached_property()",
    "collections.ChainMap",
]
NATURAL_QUERIES = [
    "How do I create a virtual environment?",
    "read a JSON file into a Python dictionary",
    "Why does 0.1 + 0.2 not equal 0.3?",
    "How can I make my program wait for a while before continuing?",
    "what happens to default argument values that are mutable, like an empty list",
    "thread-safe FIFO queue",
    "e.g. sort a list, i.e. in place",
]


@pytest.mark.parametrize("query", IDENTIFIER_QUERIES)
def test_identifiers_quotes_and_errors_are_recognised(query: str) -> None:
    assert query_profile(query).identifiers


@pytest.mark.parametrize("query", NATURAL_QUERIES)
def test_natural_questions_name_no_identifier(query: str) -> None:
    assert query_profile(query).identifiers == ()


def test_the_full_text_weight_follows_the_questions_kind() -> None:
    natural, identifier = query_profile(NATURAL_QUERIES[0]), query_profile(IDENTIFIER_QUERIES[0])
    # The fitted weights of both kinds are equal on the Python docs (docs/benchmarks.md); the rule is per kind.
    assert FUSION.fulltext_weight(identifier) == FUSION.identifier
    assert FUSION.fulltext_weight(natural) == FUSION.natural
    params = FusionParams(natural=0.1, identifier=0.2)
    assert (params.fulltext_weight(natural), params.fulltext_weight(identifier)) == (0.1, 0.2)


def test_a_rare_word_of_the_question_weighs_more_than_its_common_ones() -> None:
    shares = {"make": 0.2, "program": 0.15, "wait": 0.01}
    weights = coverage_weights(["make", "program", "wait", "nanosleep"], shares, 0.004)
    assert sum(weights) == pytest.approx(1.0)
    make, program, wait, unlisted = weights
    assert unlisted > wait > program > make  # a word the statistics do not list is rarer than any they do
    assert wait > make + program  # the everyday words together count for less than the one distinctive word
    assert coverage_weights(["make", "wait"], {}, 0.0) == [0.5, 0.5]  # no statistics yet: every word alike
    assert coverage_weights([], shares, 0.004) == []


@pytest.fixture(scope="module")
def pages(migrated: Settings) -> Iterator[Settings]:
    """Ten short pages of the real Python docs, ingested, plus a page stuffed with a question's words and a page
    that lists each of those words once."""
    from ingest.pipeline import ingest_sources

    with get_engine(migrated).begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in TABLES) + " RESTART IDENTITY CASCADE"))
    report = ingest_sources(migrated, [str(DOCS / f"{page}.html") for page in PAGES]).as_json()
    assert not report["errors"] and report["documents_added"] == len(PAGES)
    add_doc(
        migrated,
        uri="kb://stuffed",
        title="Colors temporary files",
        texts=[
            "Temporary file temporary file temporary file. Create a temporary file, delete the temporary file, "
            "file file file delete delete automatically automatically create create. Colors and shapes."
        ],
    )
    add_doc(
        migrated,
        uri="kb://listed",
        title="Colors temporary files",
        texts=["Temporary file. Create, delete automatically. Colors and shapes."],
    )
    with raw_connection(migrated) as conn:
        conn.execute("ANALYZE chunks")
    from lore import search

    search._frequent.clear()
    yield migrated


def _first_uri(settings: Settings, query: str, mode: str = "hybrid") -> str:
    hits = search_scored(settings, query, k=5, mode=mode, use_feedback=False)
    return hits[0].hit.uri if hits else ""


def test_an_identifier_finds_its_page_by_full_text(pages: Settings) -> None:
    query = "token_hex nbytes"
    hits = search_scored(pages, query, k=5, use_feedback=False)
    assert hits[0].hit.uri.endswith("library/secrets.html") and hits[0].fulltext
    assert "token_hex" in hits[0].hit.text


def test_repeating_the_questions_words_buys_a_page_nothing(pages: Settings) -> None:
    """A passage's full-text score in hybrid search is which of the question's words it uses, not how often: the
    page that repeats them gains nothing over the page that lists each once, where ts_rank_cd (full-text mode's
    ranking) rewards the repetition. Both are one-passage pages, whose page term is their similarity less the same
    gap, so a hit's score less its similarity is (1 - page share) * weight * its full-text score, less that gap."""
    question = "how do I create a temporary file that is deleted automatically"
    fulltext = {h.hit.uri: h.hit.score for h in search_scored(pages, question, k=30, mode="fulltext")}
    assert fulltext["kb://stuffed"] > fulltext["kb://listed"] > 0
    hits = {h.hit.uri: h for h in search_scored(pages, question, k=30, use_feedback=False)}
    stuffed, listed = hits["kb://stuffed"], hits["kb://listed"]
    assert stuffed.similarity is not None and listed.similarity is not None
    assert stuffed.hit.score - stuffed.similarity == pytest.approx(listed.hit.score - listed.similarity, abs=1e-6)


def test_each_of_the_questions_lexemes_is_tested_as_itself(pages: Settings) -> None:
    """The lexemes go to the statement as single-lexeme tsqueries quoted in Python: none of their characters may
    act as a tsquery operator, and each matches exactly the passages that use it."""
    odd = ["it's", "a\\b", "o''", "a:b", "x&y|z", "!", "(x)", "<->", "os.path", "3.11", "--flag", "*", "tempfil"]
    with raw_connection(pages) as conn:
        rows = conn.execute(
            "SELECT l, array_to_tsvector(ARRAY[l]) @@ t, array_to_tsvector(ARRAY[l || 'x']) @@ t, numnode(t)"
            " FROM unnest(%s::text[], %s::tsquery[]) q(l, t)",
            (odd, [tsquery_literal(lex) for lex in odd]),
        ).fetchall()
        using = conn.execute(
            "SELECT count(*) FROM chunks WHERE tsv @@ %s::tsquery", (tsquery_literal("tempfil"),)
        ).fetchone()
    assert [(lex, True, False, 1) for lex in odd] == [tuple(r) for r in rows]
    assert using is not None and using[0] > 0
