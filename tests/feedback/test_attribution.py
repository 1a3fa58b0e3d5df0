"""What a vote means to the feedback memory: 👍 credits an answer's main sources (or the source its voter said
answered it), 👎 only weakly counts against the source it led with, comparisons and corrections weigh most, and a
page is never pushed down for appearing in a downvoted answer it did not lead (lore.feedback_memory's rules, through
the real recording and search paths)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from psycopg.types.json import Jsonb

from lore import feedback_memory
from lore.config import Settings
from lore.db import database_url
from lore.feedback import FeedbackError, record_comparison, record_critique, record_source_pick, record_vote
from lore.prompts import Source, extractive_answer, search_only_answer
from lore.search import search_scored
from tests.feedback.helpers import add_answer, add_doc, embed

QUESTION = "How do I parse command-line options in a script?"
SIMILAR = "what's the way to read the flags passed to my script on the command line?"
UNRELATED = "How do I bake sourdough bread at home?"


def _kb(settings: Settings) -> dict[str, list[int]]:
    """Three pages about the command line (any may come first) and one about bread."""
    return {
        "optparse": add_doc(
            settings,
            uri="kb://optparse",
            title="optparse",
            texts=["optparse parses command-line options of a script (deprecated module)."],
        ),
        "argparse": add_doc(
            settings,
            uri="kb://argparse",
            title="argparse",
            texts=["argparse parses command-line arguments and options and writes --help messages."],
        ),
        "getopt": add_doc(
            settings,
            uri="kb://getopt",
            title="getopt",
            texts=["getopt is a C-style parser for command line options of a script."],
        ),
        "bread": add_doc(
            settings, uri="kb://bread", title="Bread", texts=["Bake sourdough bread at home with a starter and flour."]
        ),
    }


def _evidence(settings: Settings) -> dict[tuple[int, str], float]:
    with psycopg.connect(database_url(settings)) as conn:
        rows = conn.execute(
            "SELECT e.answer_id, d.uri, e.w FROM feedback_evidence e JOIN documents d ON d.id = e.document_id"
        ).fetchall()
    return {(int(a), str(u)): float(w) for a, u, w in rows}


def _moves(settings: Settings, query: str) -> dict[str, float]:
    """The feedback term search adds, by page, for a query (every candidate's document)."""
    hits = search_scored(settings, query, mode="vector", k=4)
    return {h.hit.uri: h.feedback for h in hits}


def _vote(settings: Settings, answer_id: int, value: int, voters: int = 3) -> None:
    for n in range(voters):
        record_vote(settings, answer_id=answer_id, user_id=f"U{n}", value=value, via="button")


def test_a_downvote_never_lowers_the_right_page_shown_below_the_top(db: Settings) -> None:
    kb = _kb(db)
    # The answer led with optparse; the right page, argparse, was its second source.
    answer = add_answer(
        db, question=QUESTION, model="search-only", chunk_ids=[kb["optparse"][0], kb["argparse"][0], kb["getopt"][0]]
    )
    _vote(db, answer, -1)
    assert set(_evidence(db)) == {(answer, "kb://optparse")}  # only the lead carries the 👎
    moves = _moves(db, SIMILAR)
    assert moves["kb://argparse"] == 0.0 and moves["kb://getopt"] == 0.0
    # The lead is demoted, weakly: never past NEGATIVE_SHARE of the bound, however many 👎.
    assert -feedback_memory.NEGATIVE_SHARE * db.feedback_weight <= moves["kb://optparse"] < 0


def test_an_upvote_lifts_the_top_source_for_a_similar_question_only(db: Settings) -> None:
    kb = _kb(db)
    answer = add_answer(db, question=QUESTION, model="search-only", chunk_ids=[kb["argparse"][0], kb["getopt"][0]])
    _vote(db, answer, 1)
    assert set(_evidence(db)) == {(answer, "kb://argparse")}  # not the source below the top
    similar = _moves(db, SIMILAR)
    assert 0 < similar["kb://argparse"] <= db.feedback_weight and similar["kb://getopt"] == 0.0
    before = search_scored(db, SIMILAR, mode="vector", k=4, use_feedback=False)
    after = search_scored(db, SIMILAR, mode="vector", k=4)
    assert after[0].hit.uri == "kb://argparse"
    assert after[0].hit.score > next(h.hit.score for h in before if h.hit.uri == "kb://argparse")
    # An unrelated question is not moved at all.
    assert set(_moves(db, UNRELATED).values()) == {0.0}


def test_the_same_vote_twice_counts_once_and_a_clear_removes_it(db: Settings) -> None:
    kb = _kb(db)
    answer = add_answer(db, question=QUESTION, model="search-only", chunk_ids=[kb["argparse"][0]])
    record_vote(db, answer_id=answer, user_id="U1", value=1, via="button")
    once, moved_once = _evidence(db), _moves(db, SIMILAR)["kb://argparse"]
    record_vote(db, answer_id=answer, user_id="U1", value=1, via="reaction")
    assert _evidence(db) == once and _moves(db, SIMILAR)["kb://argparse"] == pytest.approx(moved_once)
    record_vote(db, answer_id=answer, user_id="U1", value=0, via="button")
    assert _evidence(db) == {} and set(_moves(db, SIMILAR).values()) == {0.0}


def test_a_page_upvoted_answers_relied_on_is_not_demoted_by_a_downvote_of_a_similar_question(db: Settings) -> None:
    kb = _kb(db)
    liked = add_answer(db, question=QUESTION, model="search-only", chunk_ids=[kb["argparse"][0]])
    _vote(db, liked, 1, voters=1)
    disliked = add_answer(db, question=SIMILAR, model="search-only", chunk_ids=[kb["argparse"][0], kb["getopt"][0]])
    _vote(db, disliked, -1)
    assert _evidence(db)[(disliked, "kb://argparse")] < 0  # the 👎 is recorded against its lead...
    assert _moves(db, SIMILAR)["kb://argparse"] > 0  # ...and vetoed by the 👍 of the similar question


def test_a_model_answer_is_credited_to_the_sources_it_cited_inline_and_blamed_on_the_one_it_led_with(
    db: Settings,
) -> None:
    kb = _kb(db)
    chunks = [kb["optparse"][0], kb["argparse"][0], kb["getopt"][0]]
    citations = [
        {"number": 2, "uri": "kb://argparse", "title": "argparse"},
        {"number": 3, "uri": "kb://getopt", "title": "getopt"},
    ]
    text = "Use argparse.ArgumentParser [2]; getopt also exists [3, 2]."
    up = add_answer(db, question=QUESTION, answer=text, chunk_ids=chunks, citations=citations)
    _vote(db, up, 1)
    assert {uri for _, uri in _evidence(db)} == {"kb://argparse", "kb://getopt"}  # not optparse, the top source
    down = add_answer(
        db, question=QUESTION, answer="getopt does it [3]. See also [2].", chunk_ids=chunks, citations=citations
    )
    _vote(db, down, -1)
    assert {uri for a, uri in _evidence(db) if a == down} == {"kb://getopt"}  # the source it led with
    # A model answer that cites nothing is credited to its top source.
    plain = add_answer(db, question=QUESTION, answer="Use a parser.", chunk_ids=chunks, citations=[])
    _vote(db, plain, 1)
    assert {uri for a, uri in _evidence(db) if a == plain} == {"kb://optparse"}


def test_a_search_only_answer_is_credited_to_the_sources_it_quotes_and_blamed_on_its_top_source(
    db: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = _kb(db)
    names = ("optparse", "argparse", "getopt")
    chunks = [kb[name][0] for name in names]
    citations = [{"number": n, "uri": f"kb://{name}", "title": name} for n, name in enumerate(names, 1)]
    sources = [Source(n, f"kb://{name}", name, (f"{name} text",)) for n, name in enumerate(names, 1)]
    # The answer's quoted sentence comes from argparse, shown second; optparse is its top source. A document's own
    # "[3]" inside a quote names nothing: only the number the answer put at the end of the quote counts.
    text = extractive_answer([(2, "argparse parses options, see [3] for more.")], sources)
    answer = add_answer(db, question=QUESTION, answer=text, model="search-only", chunk_ids=chunks, citations=citations)
    _vote(db, answer, 1)
    assert {uri for _, uri in _evidence(db)} == {"kb://optparse", "kb://argparse"}  # the top source and the quoted
    moves = _moves(db, SIMILAR)
    assert moves["kb://argparse"] > 0 and moves["kb://getopt"] == 0.0
    # A 👎 still counts against the top source alone: never against a quoted page below it.
    _vote(db, answer, -1)
    assert set(_evidence(db)) == {(answer, "kb://optparse")}
    # Whole passages ("[n] title" then "> excerpt") quote nothing: a 👍 credits the top source.
    plain = search_only_answer(sources)
    whole = add_answer(db, question=QUESTION, answer=plain, model="search-only", chunk_ids=chunks, citations=citations)
    _vote(db, whole, 1)
    assert {uri for a, uri in _evidence(db) if a == whole} == {"kb://optparse"}
    # QUOTED_MAIN off (the rule before): the quoted page is not credited.
    monkeypatch.setattr(feedback_memory, "QUOTED_MAIN", False)
    _vote(db, answer, 1)
    assert {uri for a, uri in _evidence(db) if a == answer} == {"kb://optparse"}


def test_a_voter_who_names_the_source_that_answered_it_credits_that_page_instead_of_the_lead(db: Settings) -> None:
    kb = _kb(db)
    # A search-only answer led with optparse; argparse, shown second, is what answered it.
    chunks = [kb["optparse"][0], kb["argparse"][0], kb["getopt"][0]]
    citations = [
        {"number": n, "uri": f"kb://{name}", "title": name}
        for n, name in enumerate(("optparse", "argparse", "getopt"), 1)
    ]
    answer = add_answer(db, question=QUESTION, model="search-only", chunk_ids=chunks, citations=citations)
    _vote(db, answer, 1)
    assert set(_evidence(db)) == {(answer, "kb://optparse")}  # without a named source, a 👍 credits the lead
    share = 1 / (3 + feedback_memory.WILSON_Z**2)  # one vote's share of three
    # One voter of three says argparse answered it: the two others saw the same answer, and follow.
    record_source_pick(db, answer_id=answer, user_id="U0", source_uri="kb://argparse")
    assert _evidence(db) == pytest.approx({(answer, "kb://argparse"): 3 * share})
    moves = _moves(db, SIMILAR)
    assert moves["kb://argparse"] > 0 and moves["kb://optparse"] == 0.0 and moves["kb://getopt"] == 0.0
    # Named pages share the unnamed 👍 as they were named.
    record_source_pick(db, answer_id=answer, user_id="U1", source_uri="kb://getopt")
    assert _evidence(db) == pytest.approx(
        {(answer, "kb://argparse"): 1.5 * share, (answer, "kb://getopt"): 1.5 * share}
    )
    # The latest choice wins; a pick counts only while its voter's vote is a 👍, and a 👎 counts against the lead.
    record_source_pick(db, answer_id=answer, user_id="U1", source_uri="kb://argparse")
    record_source_pick(db, answer_id=answer, user_id="U2", source_uri="kb://getopt")
    record_vote(db, answer_id=answer, user_id="U1", value=-1, via="button")
    assert _evidence(db) == pytest.approx(
        {(answer, "kb://argparse"): share, (answer, "kb://getopt"): share, (answer, "kb://optparse"): -share}
    )
    record_vote(db, answer_id=answer, user_id="U1", value=1, via="button")  # the 👍 back: so is U1's choice
    assert _evidence(db) == pytest.approx({(answer, "kb://argparse"): 2 * share, (answer, "kb://getopt"): share})
    # A page the answer did not show, and an answer that does not exist, are refused.
    with pytest.raises(FeedbackError, match="not one of the sources"):
        record_source_pick(db, answer_id=answer, user_id="U0", source_uri="kb://bread")
    with pytest.raises(FeedbackError, match="does not exist"):
        record_source_pick(db, answer_id=answer + 1000, user_id="U0", source_uri="kb://argparse")
    assert _evidence(db)[(answer, "kb://argparse")] == pytest.approx(2 * share)


def test_without_named_for_all_only_the_voters_who_named_a_source_are_redirected(
    db: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feedback_memory, "NAMED_FOR_ALL", False)  # the variant bench/learning.py compares against
    kb = _kb(db)
    chunks = [kb["optparse"][0], kb["argparse"][0]]
    citations = [
        {"number": 1, "uri": "kb://optparse", "title": "o"},
        {"number": 2, "uri": "kb://argparse", "title": "a"},
    ]
    answer = add_answer(db, question=QUESTION, model="search-only", chunk_ids=chunks, citations=citations)
    _vote(db, answer, 1)
    record_source_pick(db, answer_id=answer, user_id="U0", source_uri="kb://argparse")
    share = 1 / (3 + feedback_memory.WILSON_Z**2)
    assert _evidence(db) == pytest.approx({(answer, "kb://argparse"): share, (answer, "kb://optparse"): 2 * share})


def test_which_is_better_outweighs_votes_and_moves_with_the_latest_choice(db: Settings) -> None:
    kb = _kb(db)
    first = add_answer(db, question=QUESTION, model="search-only", chunk_ids=[kb["optparse"][0], kb["argparse"][0]])
    again = add_answer(
        db, question=QUESTION, model="search-only", chunk_ids=[kb["argparse"][0], kb["optparse"][0]], parent_id=first
    )
    record_comparison(db, chosen_id=again, rejected_id=first, user_id="U1")
    evidence = _evidence(db)
    vote_score = 1 / (1 + feedback_memory.WILSON_Z**2)
    assert evidence[(again, "kb://argparse")] == pytest.approx(feedback_memory.COMPARISON_SCORE / 2)
    assert evidence[(again, "kb://argparse")] > vote_score  # more than a vote
    assert evidence[(again, "kb://optparse")] < 0  # the rejected answer's lead, which the chosen did not rely on
    moves = _moves(db, SIMILAR)
    assert moves["kb://argparse"] > 0 > moves["kb://optparse"]
    # The user changes their mind: the evidence follows the latest choice.
    record_comparison(db, chosen_id=first, rejected_id=again, user_id="U1")
    evidence = _evidence(db)
    assert evidence[(first, "kb://optparse")] > 0 and evidence[(first, "kb://argparse")] < 0
    assert not [key for key in evidence if key[0] == again]


def test_a_correction_naming_a_page_is_the_strongest_signal(db: Settings) -> None:
    kb = _kb(db)
    answer = add_answer(db, question=QUESTION, model="search-only", chunk_ids=[kb["optparse"][0], kb["argparse"][0]])
    _vote(db, answer, -1)
    record_critique(db, answer_id=answer, user_id="U0", critique="old module", correction="Use kb://getopt instead")
    evidence = _evidence(db)
    assert evidence[(answer, "kb://getopt")] == pytest.approx(feedback_memory.CORRECTION_SCORE)
    assert (answer, "kb://argparse") not in evidence
    with psycopg.connect(database_url(db)) as conn:  # the page the correction named is marked so, and only it
        named = dict(
            conn.execute(
                "SELECT d.uri, e.named FROM feedback_evidence e JOIN documents d ON d.id = e.document_id"
            ).fetchall()
        )
    assert named == {"kb://getopt": True, "kb://optparse": False}
    moves = _moves(db, SIMILAR)
    assert moves["kb://getopt"] > 0 > moves["kb://optparse"] and moves["kb://argparse"] == 0.0
    assert search_scored(db, SIMILAR, mode="vector", k=4)[0].hit.uri == "kb://getopt"


def test_the_memory_scales_with_similarity_and_stays_bounded(db: Settings) -> None:
    kb = _kb(db)
    qvec = embed(db, [QUESTION])[0]
    for _ in range(30):  # a flood of unanimous votes on the same question
        answer = add_answer(db, question=QUESTION, model="search-only", chunk_ids=[kb["argparse"][0]], embedding=qvec)
        _vote(db, answer, 1)
    with psycopg.connect(database_url(db), autocommit=True) as conn:
        index = feedback_memory.feedback_index(db, conn)
    docs, adj = index.adjustments(db, qvec)
    assert len(docs) == 1 and db.feedback_weight * 0.99 < adj[0] <= db.feedback_weight
    near = embed(db, [SIMILAR])[0]
    _, adj_near = index.adjustments(db, near)
    assert 0 < adj_near[0] <= adj[0]


def _database_at(migrated: Settings, name: str, revision: str) -> tuple[str, Callable[[str], None]]:
    """A new database `name` on the test server, migrated up to `revision`: its url, and how to upgrade it further."""
    from alembic import command
    from lore.migrations import alembic_config

    base = database_url(migrated)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.replace("/lore?", f"/{name}?")
    config = alembic_config(Settings(DATABASE_URL=url, _env_file=None))
    command.upgrade(config, revision)
    return url, lambda target: command.upgrade(config, target)


def test_migration_0006_recomputes_old_evidence_under_these_rules(migrated: Settings) -> None:
    """Evidence written by the old rules (every source of a downvoted answer at 1/rank) is rebuilt in SQL: only the
    source the answer led with keeps the 👎, the upvoted answer credits its top source alone."""
    url, upgrade = _database_at(migrated, "attribution", "0005_chunks_carry_document")
    vector = "[" + ",".join(["0.05"] * 384) + "]"
    with psycopg.connect(url) as conn:
        chunks = {}
        for uri in ("kb://wrong", "kb://right"):
            doc = conn.execute(
                "INSERT INTO documents (uri, title, content_hash) VALUES (%s, %s, 'h') RETURNING id", (uri, uri)
            ).fetchone()[0]
            chunks[uri] = conn.execute(
                "INSERT INTO chunks (document_id, ord, text, text_hash, embedding, acl, uri, title)"
                " VALUES (%s, 0, 't', %s, %s, '{public}', %s, %s) RETURNING id",
                (doc, uri, vector, uri, uri),
            ).fetchone()[0]
        down, up = (
            conn.execute(
                "INSERT INTO answers (question, answer, model, question_embedding, chunk_ids)"
                " VALUES ('q', 'a', 'search-only', %s, %s) RETURNING id",
                (vector, order),
            ).fetchone()[0]
            for order in ([chunks["kb://wrong"], chunks["kb://right"]], [chunks["kb://right"], chunks["kb://wrong"]])
        )
        conn.execute("INSERT INTO votes (answer_id, user_id, value) VALUES (%s, 'U1', -1), (%s, 'U1', 1)", (down, up))
        # The old rules' rows: every source of each answer, at 1/rank.
        conn.execute(
            "INSERT INTO feedback_evidence (answer_id, document_id, w)"
            " SELECT a.id, c.document_id, 0.1 FROM answers a JOIN chunks c ON c.id = ANY(a.chunk_ids)"
        )
    upgrade("0006_feedback_attribution")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT e.answer_id, d.uri, e.w FROM feedback_evidence e JOIN documents d ON d.id = e.document_id"
        ).fetchall()
        held = {r[0] for r in conn.execute("SELECT answer_id FROM feedback_answers").fetchall()}
    got = {(a, uri): w for a, uri, w in rows}
    score = 1 / (1 + feedback_memory.WILSON_Z**2)
    assert set(got) == {(down, "kb://wrong"), (up, "kb://right")}
    assert got[(down, "kb://wrong")] == pytest.approx(-score) and got[(up, "kb://right")] == pytest.approx(score)
    assert held == {down, up}


def test_a_correction_is_surer_than_a_vote_but_reaches_no_further(db: Settings) -> None:
    """Strength and reach are apart: on the question itself a correction lifts its page more than one 👍 lifts the
    top source, but on a merely similar question it lifts it by no more than its chance of asking the same thing
    (the similarity ramp) times the bound, whatever its score."""
    kb = _kb(db)
    voted = add_answer(db, question=QUESTION, model="search-only", chunk_ids=[kb["argparse"][0]])
    _vote(db, voted, 1)
    corrected = add_answer(db, question=QUESTION, model="search-only", chunk_ids=[kb["optparse"][0]])
    record_critique(db, answer_id=corrected, user_id="U0", critique="old module", correction="See kb://getopt")
    same, similar = _moves(db, QUESTION), _moves(db, SIMILAR)
    assert same["kb://getopt"] > same["kb://argparse"] > 0
    q, s = embed(db, [QUESTION, SIMILAR])
    threshold = db.feedback_threshold
    chance = min(1.0, (float(q @ s) - threshold) / (feedback_memory.RAMP_TOP - threshold))
    assert 0 < chance < 1
    assert 0 < similar["kb://getopt"] <= chance * db.feedback_weight + 1e-12


def test_a_vote_does_not_move_a_page_the_query_itself_finds_far_less_relevant(db: Settings) -> None:
    """Feedback reorders what the query finds plausible: "parse a date string" resembles an upvoted "parse
    command-line options" (above the threshold), but matches the argparse page far less than the date page, so
    the vote barely moves it and changes nothing in its ranking, while a rewording that matches argparse best
    still gets the lift."""
    kb = _kb(db)
    add_doc(
        db,
        uri="kb://dates",
        title="Dates",
        texts=["datetime.strptime parses a date string in a given format into a datetime object."],
    )
    _vote(db, add_answer(db, question=QUESTION, model="search-only", chunk_ids=[kb["argparse"][0]]), 1)
    dates_query = "How do I parse a date string in a script?"
    q, d = embed(db, [QUESTION, dates_query])
    assert float(q @ d) >= db.feedback_threshold  # near enough to the voted question to be compared with it
    lift = _moves(db, "How do I parse command line arguments?")["kb://argparse"]
    assert lift > 0
    # The restraint loosens only as the past question nears the query: at this distance, barely at all.
    assert _moves(db, dates_query).get("kb://argparse", 0.0) < 0.1 * lift
    with_votes = [h.hit.uri for h in search_scored(db, dates_query, k=4)]
    assert with_votes == [h.hit.uri for h in search_scored(db, dates_query, k=4, use_feedback=False)]


def test_with_the_guard_a_lift_does_not_pass_the_top_page_that_the_voted_answers_never_showed(
    db: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With UNSEEN_GUARD (off by default), a 👍 says its page beat what that answer showed, nothing about pages it
    never showed: a page lifted by a near question's vote stops below the query's own top page unless some
    supporting answer showed that page."""
    monkeypatch.setattr(feedback_memory, "UNSEEN_GUARD", 1)
    _kb(db)
    ranked = [h.hit for h in search_scored(db, SIMILAR, mode="vector", k=4, use_feedback=False)]
    top, lifted = ranked[0], ranked[1]
    assert top.document_id != lifted.document_id
    _vote(db, add_answer(db, question=QUESTION, model="search-only", chunk_ids=[lifted.chunk_id]), 1)
    after = search_scored(db, SIMILAR, mode="vector", k=4)
    assert [h.hit.uri for h in after[:2]] == [top.uri, lifted.uri]
    with psycopg.connect(database_url(db), autocommit=True) as conn:
        move = feedback_memory.feedback_index(db, conn).moves(db, embed(db, [SIMILAR])[0])[lifted.document_id]
    assert lifted.score + move.amount > top.score  # the vote alone would have lifted it past the top
    assert 0 <= after[1].feedback < move.amount  # the guard held it just below
    # Once an upvoted answer to a near question showed the top page below the lifted one, the lift passes it.
    shown_both = add_answer(db, question=QUESTION, model="search-only", chunk_ids=[lifted.chunk_id, top.chunk_id])
    _vote(db, shown_both, 1)
    assert search_scored(db, SIMILAR, mode="vector", k=4)[0].hit.uri == lifted.uri


def test_migration_0013_marks_the_evidence_a_correction_named(migrated: Settings) -> None:
    """Evidence stored before the `named` column existed gets it from the critiques: true for the page a
    correction on that answer named, false for the rest."""
    url, upgrade = _database_at(migrated, "named_flag", "0012_feedback_days")
    with psycopg.connect(url) as conn:
        docs = {
            uri: conn.execute(
                "INSERT INTO documents (uri, title, content_hash) VALUES (%s, %s, 'h') RETURNING id", (uri, uri)
            ).fetchone()[0]
            for uri in ("kb://named", "kb://led")
        }
        answer = conn.execute(
            "INSERT INTO answers (question, answer, model) VALUES ('q', 'a', 'search-only') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO critiques (answer_id, user_id, critique, source_uri) VALUES (%s, 'U1', 'wrong', 'kb://named')",
            (answer,),
        )
        conn.execute(
            "INSERT INTO feedback_evidence (answer_id, document_id, w) VALUES (%s, %s, 0.8), (%s, %s, -0.2)",
            (answer, docs["kb://named"], answer, docs["kb://led"]),
        )
    upgrade("0013_evidence_named")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT d.uri, e.named FROM feedback_evidence e JOIN documents d ON d.id = e.document_id"
        ).fetchall()
    assert dict(rows) == {"kb://named": True, "kb://led": False}


def test_migration_0016_credits_the_quoted_sources_of_upvoted_search_only_answers(migrated: Settings) -> None:
    """Evidence stored when a search-only 👍 credited only the top source is recomputed: the quoted source joins it."""
    url, upgrade = _database_at(migrated, "quoted_sources", "0015_source_picks")
    names = ("kb://top", "kb://quoted")
    sources = [Source(n, uri, uri, ("text",)) for n, uri in enumerate(names, 1)]
    with psycopg.connect(url) as conn:
        docs = {
            uri: conn.execute(
                "INSERT INTO documents (uri, title, content_hash) VALUES (%s, %s, 'h') RETURNING id", (uri, uri)
            ).fetchone()[0]
            for uri in names
        }
        chunk = conn.execute(
            "INSERT INTO chunks (document_id, uri, title, ord, text, text_hash, acl, embedding)"
            " VALUES (%s, 'kb://top', 'top', 0, 't', 'h', '{public}', array_fill(0.05, ARRAY[384])::vector)"
            " RETURNING id",
            (docs["kb://top"],),
        ).fetchone()[0]
        answer = conn.execute(
            "INSERT INTO answers (question, answer, model, citations, chunk_ids)"
            " VALUES ('q', %s, 'search-only', %s, %s) RETURNING id",
            (
                extractive_answer([(2, "The quoted page answers it.")], sources),
                Jsonb([{"number": n, "uri": uri, "title": uri} for n, uri in enumerate(names, 1)]),
                [chunk],
            ),
        ).fetchone()[0]
        conn.execute("INSERT INTO votes (answer_id, user_id, value) VALUES (%s, 'U1', 1)", (answer,))
        conn.execute(  # what the rules before stored: the top source alone
            "INSERT INTO feedback_evidence (answer_id, document_id, w) VALUES (%s, %s, 0.2)",
            (answer, docs["kb://top"]),
        )
    upgrade("0016_evidence_quoted")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT d.uri, e.w FROM feedback_evidence e JOIN documents d ON d.id = e.document_id"
        ).fetchall()
    share = 1 / (1 + feedback_memory.WILSON_Z**2)
    assert dict(rows) == pytest.approx({"kb://top": share, "kb://quoted": share})
