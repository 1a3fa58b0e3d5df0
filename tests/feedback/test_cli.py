"""`lore feedback vote|stats|export|train-reward` as a user runs them: the installed entry point once (a real
subprocess), the rest through click's runner in this process (same code, without paying imports each time)."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from lore.cli import main
from lore.config import Settings
from lore.db import raw_connection
from lore.feedback import record_comparison
from tests.feedback.helpers import add_answer, rand_vec, votes


def lore(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_vote_stats_and_export(db: Settings) -> None:
    a = add_answer(
        db, question="How do I deploy?", answer="make ship", channel_id="C1", message_ts="1.1", embedding=rand_vec(1)
    )
    b = add_answer(
        db,
        question="How do I deploy?",
        answer="by hand",
        channel_id="C2",
        message_ts="1.2",
        embedding=rand_vec(1),
        parent_id=a,
    )
    run = subprocess.run(
        [sys.executable, "-m", "lore.cli", "feedback", "vote", str(a), "up", "--user", "U1", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"answer_id": a, "user": "U1", "vote": "up", "value": 1}
    assert lore("feedback", "vote", str(b), "down", "--user", "U1")[0] == 0
    assert lore("feedback", "vote", str(b), "down", "--user", "U2")[0] == 0
    assert lore("feedback", "vote", str(b), "clear", "--user", "U2")[0] == 0
    assert votes(db) == {(a, "U1"): 1, (b, "U1"): -1}
    record_comparison(db, chosen_id=a, rejected_id=b, user_id="U1")

    code, _, err = lore("feedback", "vote", "999999", "up", "--user", "U1")
    assert code == 2 and "answer 999999 does not exist" in err

    code, out, _ = lore("feedback", "stats", "--json")
    stats = json.loads(out)
    assert {k: stats[k] for k in ("answers", "up", "down", "pairs")} == {"answers": 2, "up": 1, "down": 1, "pairs": 1}
    assert {r["channel"]: r["up_rate"] for r in stats["by_channel"]} == {"C1": 1.0, "C2": 0.0}
    assert stats["by_day"][0]["answers"] == 2
    assert stats["most_downvoted"][0]["answer_id"] == b
    code, out, _ = lore("feedback", "stats")
    assert code == 0 and "most downvoted" in out and "by channel" in out

    code, out, err = lore("feedback", "export", "--format", "trl-dpo")
    assert code == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["chosen"] == [{"role": "assistant", "content": "make ship"}]
    assert row["rejected"] == [{"role": "assistant", "content": "by hand"}]
    code, _, err = lore("feedback", "export", "--format", "trl-dpo", "--eval-fraction", "0.2")
    assert code == 2 and "-o FILE" in err


def test_train_reward_with_too_little_data_does_nothing(db: Settings) -> None:
    a = add_answer(db, question="q", answer="a", message_ts="1.1", embedding=rand_vec(2))
    assert lore("feedback", "vote", str(a), "up", "--user", "U1")[0] == 0
    code, out, err = lore("feedback", "train-reward", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["trained"] is False and "need at least" in report["reason"]
    assert not (db.home / "reward" / "model.npz").exists()
    code, out, _ = lore("feedback", "train-reward")
    assert code == 0 and "not enough feedback" in out and "nothing changed" in out


def test_a_vote_may_name_the_source_that_answered_it(db: Settings) -> None:
    citations = [{"number": 1, "uri": "kb://a", "title": "A"}, {"number": 2, "uri": "kb://b", "title": "B"}]
    a = add_answer(db, question="q", answer="a [1] b [2]", citations=citations, embedding=rand_vec(3))
    code, out, err = lore("feedback", "vote", str(a), "up", "--user", "U1", "--source", "kb://b", "--json")
    assert code == 0, err
    assert json.loads(out) == {"answer_id": a, "user": "U1", "vote": "up", "value": 1, "source": "kb://b"}
    code, _, err = lore("feedback", "vote", str(a), "up", "--user", "U2", "--source", "kb://c")
    assert code == 2 and "'kb://c' is not one of the sources of answer" in err
    code, _, err = lore("feedback", "vote", str(a), "down", "--user", "U2", "--source", "kb://a")
    assert code == 2 and "only be named with an up vote" in err
    assert votes(db) == {(a, "U1"): 1}  # the refused ones recorded nothing
    with raw_connection(db) as conn:
        assert conn.execute("SELECT user_id, source_uri FROM source_picks").fetchall() == [("U1", "kb://b")]
    assert json.loads(lore("feedback", "stats", "--json")[1])["sources_named"] == 1
    assert lore("feedback", "vote", str(a), "down", "--user", "U1")[0] == 0  # a named source counts with its 👍 only
    assert json.loads(lore("feedback", "stats", "--json")[1])["sources_named"] == 0
