"""Full text on a knowledge base where some words are everywhere: a frequent word alone does not make a passage
a candidate, a question of frequent words only needs all of them, operators keep websearch's meaning."""

from __future__ import annotations

import pytest

import lore.search
from lore.config import Settings
from lore.db import raw_connection
from lore.search import search_scored
from tests.feedback.helpers import add_doc

TOPICS = ["billing", "search", "auth", "mail", "chat", "files", "jobs", "maps", "queues", "metrics"]


@pytest.fixture
def widgets(db: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """40 passages that all say "widget" (a third of them "gadget" too), two that mention a zeppelin (one of them
    with a widget), analyzed so PostgreSQL's statistics know which words are frequent."""
    monkeypatch.setattr(lore.search, "FREQUENT_MIN_CHUNKS", 5)
    monkeypatch.setattr(lore.search, "FREQUENT_SHARE", 0.2)
    ids: dict[str, list[int]] = {"widget": [], "both": [], "zeppelin": [], "widget+zeppelin": []}
    for n in range(40):
        topic = TOPICS[n % len(TOPICS)]
        gadget = n % 3 == 0
        text = f"The {topic} widget {'and its gadget ' if gadget else ''}settings page, part {n}."
        chunk = add_doc(db, uri=f"kb://w{n}", title=f"Widget {n}", texts=[text])[0]
        ids["both" if gadget else "widget"].append(chunk)
    ids["zeppelin"] += add_doc(db, uri="kb://z", title="Airships", texts=["A zeppelin is a rigid airship."])
    ids["widget+zeppelin"] += add_doc(
        db, uri="kb://wz", title="Toys", texts=["The zeppelin widget floats over the toy shop."]
    )
    with raw_connection(db) as conn:
        conn.execute("ANALYZE chunks")
    return ids


def _fulltext(settings: Settings, question: str) -> list[int]:
    return [h.hit.chunk_id for h in search_scored(settings, question, k=50, mode="fulltext", use_feedback=False)]


def test_the_statistics_name_the_frequent_words(db: Settings, widgets: dict[str, list[int]]) -> None:
    frequent = lore.search._frequent_lexemes(db).split(" ")
    assert "widget" in frequent and "set" in frequent  # stems: 'settings' -> 'set'
    assert "zeppelin" not in frequent


def test_a_frequent_word_alone_does_not_make_a_full_text_candidate(
    db: Settings, widgets: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    got = _fulltext(db, "widget zeppelin")
    assert got[0] == widgets["widget+zeppelin"][0]  # ranked on every word: the passage with both comes first
    assert set(got) == set(widgets["zeppelin"] + widgets["widget+zeppelin"])
    # The same question when no word counts as frequent: passages with only the widget are candidates again.
    monkeypatch.setattr(lore.search, "FREQUENT_SHARE", 1.0)
    lore.search._frequent.clear()
    assert set(widgets["widget"]) & set(_fulltext(db, "widget zeppelin"))


def test_a_question_of_frequent_words_only_needs_all_of_them(db: Settings, widgets: dict[str, list[int]]) -> None:
    got = _fulltext(db, "widget gadget")
    assert set(got) == set(widgets["both"])


def test_operators_keep_the_websearch_meaning(db: Settings, widgets: dict[str, list[int]]) -> None:
    """An explicit OR matches either word, frequent or not; a quoted phrase is not reduced to its rare words."""
    either = set(_fulltext(db, "gadget or zeppelin"))
    assert either == set(widgets["both"] + widgets["zeppelin"] + widgets["widget+zeppelin"])
    assert _fulltext(db, '"zeppelin widget"') == widgets["widget+zeppelin"]


def test_hybrid_search_uses_the_same_candidates(db: Settings, widgets: dict[str, list[int]]) -> None:
    hits = search_scored(db, "widget zeppelin", k=5, mode="hybrid", use_feedback=False)
    fulltext = {h.hit.chunk_id for h in hits if h.fulltext}
    assert fulltext == set(widgets["zeppelin"] + widgets["widget+zeppelin"])


def test_statistics_that_cannot_be_read_leave_every_word_counting(
    db: Settings, widgets: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A role that may not read the statistics (here: a statement that fails) still searches, as before the
    filter: a passage with only the frequent word is a candidate again, and the failure is logged."""
    monkeypatch.setattr(lore.search, "_FREQUENT_SQL", "SELECT * FROM no_such_statistics")
    got = _fulltext(db, "widget zeppelin")
    assert set(widgets["widget"]) & set(got)
    assert "frequent_words_unavailable error=" in caplog.text
    assert _fulltext(db, "widget zeppelin")  # the search connection is still usable
