"""Training pairs from a real knowledge base and real feedback rows: kinds, the held-out split, negatives."""

from __future__ import annotations

import pytest

from lore.config import Settings
from lore.db import raw_connection
from lore.embedder_pairs import (
    DOCUMENT_HOLDOUT,
    FEEDBACK_HOLDOUT,
    bucket,
    feedback_pairs,
    knowledge_base_pairs,
    load_corpus,
    mine_negatives,
    normalize_question,
)
from lore.embeddings import get_embedder
from lore.feedback import record_source_pick
from tests.finetune.helpers import add_answer, build_kb, vote


# Training, ONNX export and embedding on 2 shared cores: minutes under load.
@pytest.mark.timeout(1200)
def test_pseudo_questions_come_from_headings_identifiers_definitions_and_sentences(db: Settings) -> None:
    build_kb(db)
    with raw_connection(db) as conn:  # a private page's passages are not trained on unless asked
        conn.execute("UPDATE chunks SET acl = ARRAY['C-private'] WHERE uri LIKE '%%/sqlite3.html'")
    corpus = load_corpus(db)
    train, held = knowledge_base_pairs(corpus, include_private=False)

    kinds = {p.kind for p in train + held}
    assert kinds == {"heading", "identifier", "definition", "sentence"}
    identifiers = {p.query for p in train + held if p.kind == "identifier"}
    assert "json.dump" in identifiers
    assert any(q.startswith("pathlib.") or q in {"PurePath", "Path"} for q in identifiers), identifiers
    # A heading under its page title asks for the first passage of its section.
    basic = [p for p in train + held if p.kind == "heading" and p.query.startswith("Basic Usage")]
    assert basic and corpus.headings[basic[0].positive].endswith("Basic Usage")
    # The Sphinx breadcrumb in front of the heading path ("The Python Standard Library > Internet Data Handling")
    # is not what the question is about: the page's title is.
    assert corpus.headings[basic[0].positive].startswith("The Python Standard Library > Internet Data Handling > ")
    assert basic[0].query == f"Basic Usage ({corpus.titles[basic[0].positive]})"
    assert corpus.titles[basic[0].positive].startswith("json")
    # A sentence taken as the question is taken out of its positive (no copy to match).
    for pair in train + held:
        if pair.kind in ("sentence", "definition"):
            assert pair.positive_text is not None and pair.query not in pair.positive_text
    # Held out by document: no document has pairs on both sides, and the held-out share is about right.
    train_docs = {corpus.uris[p.positive] for p in train}
    held_docs = {corpus.uris[p.positive] for p in held}
    assert train_docs and held_docs and not train_docs & held_docs
    assert all(bucket(uri) < DOCUMENT_HOLDOUT for uri in held_docs)
    assert not any("sqlite3" in corpus.uris[p.positive] for p in train + held)
    assert any(
        "sqlite3" in corpus.uris[p.positive]
        for p in knowledge_base_pairs(corpus, include_private=True)[0]
        + knowledge_base_pairs(corpus, include_private=True)[1]
    )


def _question(stem: str, *, held_out: bool) -> str:
    """A question that falls on the chosen side of the feedback split."""
    for n in range(500):
        question = f"{stem} (variant {n})"
        if (bucket("feedback:" + normalize_question(question)) < FEEDBACK_HOLDOUT) == held_out:
            return question
    raise AssertionError("no variant on that side")


# Training, ONNX export and embedding on 2 shared cores: minutes under load.
@pytest.mark.timeout(1200)
def test_feedback_pairs_respect_what_each_signal_means(db: Settings) -> None:
    uris = build_kb(db)
    embed = get_embedder(db).embed
    json_q = _question("how do I write JSON to a file", held_out=False)
    # Upvoted: the top source is the answer. Downvoted, leading with csv: csv is a hard negative for the question.
    up = add_answer(db, json_q, cited=[uris["json"], uris["pathlib"]], qvec=embed([json_q])[0])
    vote(db, up, 1)
    down = add_answer(db, json_q, cited=[uris["csv"], uris["json"]], qvec=embed([json_q])[0])
    vote(db, down, -1)
    # A downvoted answer that led with the page another answer to the same question was upvoted for: never a
    # negative for that page.
    also_down = add_answer(db, json_q, cited=[uris["json"]], qvec=embed([json_q])[0])
    vote(db, also_down, -1, user="U2")
    # A correction names the right page; the corrected answer's top source becomes a negative.
    tmp_q = _question("where do temporary files go", held_out=False)
    corrected = add_answer(db, tmp_q, cited=[uris["shutil"]], qvec=embed([tmp_q])[0])
    with raw_connection(db) as conn:
        conn.execute(
            "INSERT INTO critiques (answer_id, user_id, critique, source_uri) VALUES (%s, 'U3', 'wrong page', %s)",
            (corrected, uris["tempfile"]),
        )
    # A comparison: the chosen answer's top source is right, the rejected one's a negative.
    cmp_q = _question("count things in a list", held_out=False)
    chosen = add_answer(db, cmp_q, cited=[uris["collections"]])
    rejected = add_answer(db, cmp_q, cited=[uris["itertools"]])
    with raw_connection(db) as conn:
        conn.execute(
            "INSERT INTO comparisons (chosen_id, rejected_id, user_id) VALUES (%s, %s, 'U4')", (chosen, rejected)
        )
    # A voter said which source answered it: that page is the answer, not the one the answer led with.
    named_q = _question("copy a whole directory tree", held_out=False)
    named = add_answer(db, named_q, cited=[uris["pathlib"], uris["shutil"]])
    vote(db, named, 1)
    record_source_pick(db, answer_id=named, user_id="U1", source_uri=uris["shutil"])
    # Held out: never a training pair. Private: not used at all by default.
    held_q = _question("parse command line options", held_out=True)
    vote(db, add_answer(db, held_q, cited=[uris["argparse"]]), 1)
    private_q = _question("secret question about logging", held_out=False)
    vote(db, add_answer(db, private_q, cited=[uris["logging"]], private=True), 1)

    corpus = load_corpus(db)
    train, held = feedback_pairs(db, corpus, include_private=False)
    by_query: dict[str, list[tuple[str, set[str]]]] = {}
    for pair in train:
        assert pair.kind == "feedback"
        by_query.setdefault(pair.query, []).append(
            (corpus.uris[pair.positive], {corpus.uris[n] for n in pair.negatives})
        )
    assert by_query[json_q] == [(uris["json"], {uris["csv"]})]
    assert by_query[tmp_q] == [(uris["tempfile"], {uris["shutil"]})]
    assert by_query[cmp_q] == [(uris["collections"], {uris["itertools"]})]
    assert by_query[named_q] == [(uris["shutil"], set())]
    assert held_q not in by_query and private_q not in by_query
    assert [(row.query, row.relevant) for row in held] == [(held_q.strip(), (uris["argparse"],))]
    assert private_q in {p.query for p in feedback_pairs(db, corpus, include_private=True)[0]}

    # Mining gives every pair without a negative one from another page, below the positive's similarity.
    kb_train, _ = knowledge_base_pairs(corpus, include_private=False)
    mined = mine_negatives(corpus, kb_train, embed([p.query for p in kb_train]))
    with_negative = [p for p in mined if p.negatives]
    assert len(with_negative) >= 0.9 * len(mined)
    q = embed([p.query for p in with_negative])
    for pair, vector in zip(with_negative, q, strict=True):
        negative = pair.negatives[0]
        assert corpus.uris[negative] != corpus.uris[pair.positive]
        assert float(corpus.vectors[negative] @ vector) < float(corpus.vectors[pair.positive] @ vector)
