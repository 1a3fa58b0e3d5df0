"""`lore eval retrieval FILE --feedback on|off`: off (the default) ranks by retrieval alone, on searches as answers
do, with the feedback memory; the JSON has the same shape either way."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from lore.cli import main
from lore.config import Settings
from lore.feedback import record_vote
from lore.search import hybrid_search
from tests.feedback.helpers import add_answer, add_doc

QUESTION = "How do I ship a release of the service to production?"


def _eval(path: Path, *options: str) -> dict[str, float]:
    result = CliRunner().invoke(
        main, ["eval", "retrieval", str(path), "-k", "1", "--mode", "vector", "--json", *options]
    )
    assert result.exit_code == 0, result.output[-2000:]
    document: dict[str, float] = json.loads(result.stdout)
    assert set(document) == {"n", "recall@k", "mrr", "ndcg@10", "k"}
    return document


def test_eval_retrieval_with_the_feedback_memory_on_shows_what_the_votes_did(db: Settings, tmp_path: Path) -> None:
    add_doc(db, uri="kb://legacy", title="Deploying", texts=["Ship a release of the service to production with scp."])
    add_doc(db, uri="kb://release", title="Release process", texts=["Releases go out with make ship, in stages."])
    add_doc(db, uri="kb://vpn", title="VPN", texts=["Connect to the VPN with the WireGuard profile."])
    top = hybrid_search(db, QUESTION, k=3, mode="vector", use_feedback=False)
    right = top[1].uri  # the page retrieval alone ranks second is the right one
    questions = tmp_path / "eval.jsonl"
    questions.write_text(json.dumps({"query": QUESTION, "relevant": [right]}) + "\n")
    off = _eval(questions)
    assert off["recall@k"] == 0.0 and off["mrr"] == 0.5

    # The team asked a similar question; the answer that led with the right page got three 👍.
    chunks = [h.chunk_id for h in sorted(top, key=lambda h: h.uri != right)]
    answer = add_answer(
        db, question="how do we ship a release of our service to production?", model="search-only", chunk_ids=chunks
    )
    for user in ("U1", "U2", "U3"):
        record_vote(db, answer_id=answer, user_id=user, value=1, via="button")

    assert _eval(questions, "--feedback", "on") == {**off, "recall@k": 1.0, "mrr": 1.0, "ndcg@10": 1.0}
    assert _eval(questions, "--feedback", "off") == off == _eval(questions)  # off is the default, unchanged by votes
    bad = CliRunner().invoke(main, ["eval", "retrieval", str(questions), "--feedback", "maybe"])
    assert bad.exit_code == 2 and "maybe" in bad.output
