"""`lore feedback vote|stats|export|train-reward` as a user runs them (subprocesses on the test database)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from lore.config import Settings
from lore.feedback import record_comparison
from tests.feedback.helpers import add_answer, votes

LORE = [sys.executable, "-m", "lore.cli"]


def lore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LORE, *args], capture_output=True, text=True, timeout=120)


def _vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=384).astype(np.float32)
    return v / np.linalg.norm(v)


def test_vote_stats_and_export(db: Settings) -> None:
    a = add_answer(
        db, question="How do I deploy?", answer="make ship", channel_id="C1", message_ts="1.1", embedding=_vec(1)
    )
    b = add_answer(
        db,
        question="How do I deploy?",
        answer="by hand",
        channel_id="C2",
        message_ts="1.2",
        embedding=_vec(1),
        parent_id=a,
    )
    run = lore("feedback", "vote", str(a), "up", "--user", "U1", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"answer_id": a, "user": "U1", "vote": "up", "value": 1}
    assert lore("feedback", "vote", str(b), "down", "--user", "U1").returncode == 0
    assert lore("feedback", "vote", str(b), "down", "--user", "U2").returncode == 0
    assert lore("feedback", "vote", str(b), "clear", "--user", "U2").returncode == 0
    assert votes(db) == {(a, "U1"): 1, (b, "U1"): -1}
    record_comparison(db, chosen_id=a, rejected_id=b, user_id="U1")

    missing = lore("feedback", "vote", "999999", "up", "--user", "U1")
    assert missing.returncode == 2 and "answer 999999 does not exist" in missing.stderr

    stats = json.loads(lore("feedback", "stats", "--json").stdout)
    assert {k: stats[k] for k in ("answers", "up", "down", "pairs")} == {"answers": 2, "up": 1, "down": 1, "pairs": 1}
    assert {r["channel"]: r["up_rate"] for r in stats["by_channel"]} == {"C1": 1.0, "C2": 0.0}
    assert stats["by_day"][0]["answers"] == 2
    assert stats["most_downvoted"][0]["answer_id"] == b
    table = lore("feedback", "stats")
    assert table.returncode == 0 and "most downvoted" in table.stdout and "by channel" in table.stdout

    exported = lore("feedback", "export", "--format", "trl-dpo")
    assert exported.returncode == 0, exported.stderr
    (row,) = [json.loads(line) for line in exported.stdout.splitlines()]
    assert row["chosen"] == [{"role": "assistant", "content": "make ship"}]
    assert row["rejected"] == [{"role": "assistant", "content": "by hand"}]
    bad = lore("feedback", "export", "--format", "trl-dpo", "--eval-fraction", "0.2")
    assert bad.returncode == 2 and "-o FILE" in bad.stderr


def test_train_reward_with_too_little_data_does_nothing(db: Settings) -> None:
    add_answer(db, question="q", answer="a", message_ts="1.1", embedding=_vec(2))
    run = lore("feedback", "train-reward", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["trained"] is False and "need at least" in report["reason"]
    assert not (db.home / "reward" / "model.npz").exists()
