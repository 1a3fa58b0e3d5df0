"""Search-only answers on the sample handbook (examples/): the sentence that answers is shown, cited, readable."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from lore.agent import answer_question
from lore.config import Settings
from lore.db import get_engine
from lore.extract import passage_sentences, shorten, split_sentences
from lore.models import TABLES
from tests.conftest import REPO


@pytest.fixture(scope="module")
def handbook(migrated: Settings) -> Iterator[Settings]:
    from ingest.pipeline import ingest_sources

    with get_engine(migrated).begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in TABLES) + " RESTART IDENTITY CASCADE"))
    report = ingest_sources(migrated, [str(REPO / "examples")]).as_json()
    assert report["documents_added"] >= 10 and not report["errors"]
    yield migrated


def _quoted(answer: str) -> list[str]:
    return [line[2:] for line in answer.splitlines() if line.startswith("> ")]


def _source_words() -> set[str]:
    words: set[str] = set()
    for path in (REPO / "examples").iterdir():
        words.update(re.findall(r"\w+", path.read_text(encoding="utf-8")))
    return words


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is the nightly hotel limit in London?", "€250 per night in London"),
        ("How long are PostgreSQL backups kept?", "kept for 35 days"),
        ("which port does WireGuard use for the company tunnel", "UDP port 51820"),
        ("Who writes the postmortem after a SEV2 and by when?", "within five working days"),
    ],
)
def test_the_answer_sentence_is_shown_with_its_citation(handbook: Settings, question: str, answer: str) -> None:
    result = answer_question(handbook, question)
    assert result.model == "search-only" and not result.generated
    quotes = _quoted(result.text)
    assert 1 <= len(quotes) <= 3
    shown = " ".join(quotes)
    assert answer in shown.replace("**", "")
    assert len(shown.split()) <= 120  # sentences, not whole passages
    # Every quote ends with the number of a source listed below it, and that source is a citation.
    numbers = {c.number for c in result.citations}
    for quote in quotes:
        cited = re.search(r"\[(\d+)\]$", quote)
        assert cited and int(cited.group(1)) in numbers
    listed = result.text.split("Sources:\n", 1)[1].splitlines()
    assert [line.split("] ", 1)[1] for line in listed] == [c.title for c in result.citations]


def test_a_table_row_is_shown_as_a_sentence_without_pipes(handbook: Settings) -> None:
    result = answer_question(handbook, "What is the status page deadline for a SEV2 incident?")
    shown = " ".join(_quoted(result.text))
    assert "status page within 30 minutes" in shown
    assert "|" not in result.text and "---" not in result.text


def test_shown_words_are_whole_words_of_the_sources(handbook: Settings) -> None:
    known = _source_words()
    questions = [
        "how do I undo a bad deploy of the API",
        "What should I do in my first week as a new engineer?",
        "when does the on-call shift change over",
        "are SMS codes allowed for two-factor authentication",
    ]
    for question in questions:
        shown = " ".join(_quoted(answer_question(handbook, question).text))
        words = set(re.findall(r"\w+", re.sub(r"\[\d+\]", "", shown)))
        assert words and words <= known, words - known  # a word cut in half would not be in the sources
        assert "```" not in shown and "**" not in shown


def test_sentences_of_a_markdown_passage() -> None:
    passage = (
        "Hotels: up to **€180 per night** in most cities. It is less in Berlin.\n\n"
        "| severity | response |\n|---|---|\n| SEV1 | all hands |\n\n"
        "```bash\nshipyard rollback --env production\n```\n"
        "- A list item, e.g. this one, is a sentence of its own.\n"
        "- ok"
    )
    assert passage_sentences(passage) == [
        "Hotels: up to €180 per night in most cities.",
        "It is less in Berlin.",
        "SEV1: response all hands.",
        "A list item, e.g. this one, is a sentence of its own.",
    ]
    assert split_sentences("Use v1.2 here. Then stop.") == ["Use v1.2 here.", "Then stop."]


def test_a_long_sentence_ends_at_a_word_boundary() -> None:
    sentence = "word " * 30 + "supercalifragilistic ending here."
    short = shorten(sentence, 160)
    assert short.endswith(" …") and len(short) <= 162
    assert all(w in {"word", "supercalifragilistic", "ending", "here.", "…"} for w in short.split())
