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
from lore.search import FUSION, FusionParams, query_profile, search_scored
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


def test_the_full_text_weight_follows_the_questions_kind_and_rare_words() -> None:
    natural, identifier = query_profile(NATURAL_QUERIES[0]), query_profile(IDENTIFIER_QUERIES[0])
    # The fitted weights of both kinds are equal on the Python docs (docs/benchmarks.md); the rule is per kind.
    assert FUSION.fulltext_weight(identifier, 0.0) == FUSION.identifier
    assert FUSION.fulltext_weight(natural, 0.0) == FUSION.natural
    # Rare words raise the weight of a natural question too (when the fitted parameters give rarity a say).
    params = FusionParams(natural=0.3, identifier=1.2, rare=0.8, rare_below=0.01)
    assert params.fulltext_weight(identifier, 0.0) == pytest.approx(1.2)
    shares = {"creat": 0.05, "virtual": 0.02, "environ": 0.03, "heapq": 0.001, "key": 0.02}
    assert params.rare_share(["creat", "virtual", "environ"], shares, 0.004) == 0.0
    assert params.rare_share(["heapq", "nsmallest", "key"], shares, 0.004) == pytest.approx(2 / 3)
    common = params.fulltext_weight(natural, params.rare_share(["creat", "virtual", "environ"], shares, 0.004))
    rare = params.fulltext_weight(natural, params.rare_share(["heapq", "nsmallest", "key"], shares, 0.004))
    assert common == pytest.approx(0.3) and rare > common
    assert params.rare_share([], shares, 0.004) == 0.0
    assert params.rare_share(["heapq"], {}, 0.0) == 0.0  # no statistics yet: nothing is known to be rare


@pytest.fixture(scope="module")
def pages(migrated: Settings) -> Iterator[Settings]:
    """Ten short pages of the real Python docs, ingested, plus a page stuffed with a question's words."""
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


def test_a_natural_question_is_not_dragged_down_by_a_keyword_stuffed_page(pages: Settings) -> None:
    question = "how do I create a temporary file that is deleted automatically"
    assert _first_uri(pages, question, mode="fulltext") == "kb://stuffed"  # full text alone falls for it
    assert _first_uri(pages, question).endswith("library/tempfile.html")
