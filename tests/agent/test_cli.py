"""`lore ask`, `lore search` and `lore eval retrieval` on the sample handbook: `lore ask --json` as a real
subprocess, the others through click's runner in this process (loading the embedder once keeps this fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from harness.openai_server import FakeOpenAI
from lore.cli import main
from lore.config import Settings, get_settings
from lore.db import get_engine, raw_connection
from lore.models import TABLES
from tests.conftest import REPO

LORE = [sys.executable, "-m", "lore.cli"]


@pytest.fixture(scope="module")
def handbook(migrated: Settings) -> Iterator[Settings]:
    """The sample handbook (examples/) ingested once for this module's tests."""
    from ingest.pipeline import ingest_sources

    with get_engine(migrated).begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in TABLES) + " RESTART IDENTITY CASCADE"))
    report = ingest_sources(migrated, [str(REPO / "examples")])
    assert report.as_json()["documents_added"] >= 10 and not report.as_json()["errors"]
    yield migrated


def run_lore(*args: str, env: dict[str, str] | None = None, code: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*LORE, *args], capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})}, cwd=REPO
    )
    assert result.returncode == code, result.stderr[-3000:]
    return result


def invoke(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output[-3000:]
    return result


def test_ask_json_without_a_model_answers_with_passages(handbook: Settings) -> None:
    document: dict[str, Any] = json.loads(run_lore("ask", "How do I roll back a bad deploy?", "--json").stdout)
    assert set(document) == {"answer_id", "answer", "citations", "model"}
    assert document["model"] == "search-only" and "Not generated" in document["answer"]
    assert document["citations"] and all(set(c) == {"uri", "title"} for c in document["citations"])
    assert document["citations"][0]["uri"].endswith("deploy-process.md")
    with raw_connection(handbook) as conn:
        row = conn.execute("SELECT question, surface FROM answers WHERE id = %s", (document["answer_id"],)).fetchone()
    assert row == ("How do I roll back a bad deploy?", "cli")


def test_ask_json_with_an_openai_compatible_model(handbook: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI() as fake:
        fake.reply("Run shipyard rollback [1]; it takes about 4 minutes.")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        monkeypatch.setenv("LORE_CHAT_MODEL", "fake-model")
        get_settings.cache_clear()
        try:
            document = json.loads(invoke("ask", "How do I roll back a bad deploy?", "--json").stdout)
        finally:
            monkeypatch.undo()
            get_settings.cache_clear()
    assert document["answer"] == "Run shipyard rollback [1]; it takes about 4 minutes."
    assert document["model"] == "fake-model"
    assert [c["uri"].rsplit("/", 1)[-1] for c in document["citations"]] == ["deploy-process.md"]
    prompt = fake.completions[0].messages[-1]["content"]
    assert "<documents>" in prompt and "shipyard rollback" in prompt


def test_search_json(handbook: Settings) -> None:
    hits = json.loads(invoke("search", "which UDP port does WireGuard use", "-k", "3", "--json").stdout)
    assert 1 <= len(hits) <= 3
    assert all(set(h) == {"chunk_id", "uri", "title", "score", "text"} for h in hits)
    assert hits[0]["uri"].endswith("vpn-setup.md") and "51820" in hits[0]["text"]


def test_eval_retrieval_all_modes_json(handbook: Settings, tmp_path: Path) -> None:
    rows = json.loads(invoke("eval", "retrieval", str(REPO / "examples/eval.jsonl"), "--mode", "all", "--json").stdout)
    assert [r["mode"] for r in rows] == ["vector", "fulltext", "hybrid"]
    for row in rows:
        assert {"n", "recall@k", "mrr", "ndcg@10"} <= set(row) and row["n"] == 30
        assert all(0.0 <= row[m] <= 1.0 for m in ("recall@k", "mrr", "ndcg@10"))
    by_mode = {r["mode"]: r for r in rows}
    # Fusion must not lose what vector search finds on the handbook's paraphrased questions.
    assert by_mode["hybrid"]["recall@k"] >= by_mode["vector"]["recall@k"] - 0.05
    assert by_mode["hybrid"]["mrr"] >= 0.8

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "ok", "relevant": ["x"]}\n{"query": "no relevant list"}\n')
    result = invoke("eval", "retrieval", str(bad), code=2)
    assert f"{bad}:2" in result.output and "relevant" in result.output


def test_chat_streams_answers_and_keeps_the_conversation(handbook: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI() as fake:
        fake.reply("Use shipyard rollback [1].", "About 4 minutes [1].")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        monkeypatch.setenv("LORE_CHAT_MODEL", "fake-model")
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(
                main, ["chat"], input="How do I roll back a deploy?\nhow long does the rollback take?\nexit\n"
            )
        finally:
            monkeypatch.undo()
            get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "Use shipyard rollback [1]." in result.output and "About 4 minutes [1]." in result.output
    assert "deploy-process.md" in result.output  # citations are listed under each answer
    second = fake.completions[1].messages
    assert [m["role"] for m in second[1:3]] == ["user", "assistant"]
    assert (
        second[1]["content"] == "How do I roll back a deploy?" and second[2]["content"] == "Use shipyard rollback [1]."
    )


def test_chat_commands_vote_on_and_show_the_last_answer(handbook: Settings) -> None:
    """/help is a command, not a question; /up then /down leaves one vote, the latest, by the terminal's user."""
    from lore.commands.chat import local_user

    script = "/help\n/up\nHow do I roll back a bad deploy?\n/up\n/down\n/sources\n/nonsense\n/quit\nnever asked\n"
    result = CliRunner().invoke(main, ["chat"], input=script)
    assert result.exit_code == 0, result.output
    assert "/sources" in result.output and "no answer to vote on yet" in result.output
    assert "unknown command /nonsense" in result.output
    assert result.output.count("deploy-process.md") >= 2  # under the answer, and again for /sources
    with raw_connection(handbook) as conn:
        questions = [r[0] for r in conn.execute("SELECT question FROM answers ORDER BY id DESC LIMIT 3").fetchall()]
        answer_id = conn.execute(
            "SELECT id FROM answers WHERE question = 'How do I roll back a bad deploy?' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        votes = conn.execute("SELECT user_id, value FROM votes WHERE answer_id = %s", (answer_id,)).fetchall()
    assert "/help" not in questions and "never asked" not in questions
    assert votes == [(local_user(), -1)]


def test_one_shot_commands_keep_info_lines_out_of_the_output(handbook: Settings) -> None:
    """`lore ask` prints the answer and its sources only; -v brings the INFO lines back (on stderr)."""
    quiet = run_lore("ask", "How do I set up the VPN on my laptop?")  # a question no other test votes on
    assert "level=info" not in quiet.stdout + quiet.stderr
    assert "vpn-setup.md" in quiet.stdout
    verbose = run_lore("-v", "search", "roll back a deploy", "--json")
    json.loads(verbose.stdout)  # still exactly one JSON document on stdout
    assert "level=info" in verbose.stderr
