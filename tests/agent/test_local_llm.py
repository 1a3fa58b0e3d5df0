"""End to end through the real `openai` client against a real OpenAI-compatible server: llama.cpp serving
SmolLM2-135M-Instruct from the PyPI package (installed by `make test`). Assertions are on structure, not
wording: a 135M model's answers vary."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from harness.local_server import free_port
from lore.agent import answer_question
from lore.config import Settings
from lore.db import raw_connection
from lore.llm import RepetitionGuard
from lore.local_llm import MODEL_ALIAS, LocalLLMError, base_url, start_server
from tests.search.conftest import build_kb


@pytest.fixture(scope="module")
def local_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    try:
        process = start_server(port=port, timeout_s=180, log=log)
    except LocalLLMError as exc:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        pytest.fail(f"the local model server is required (make install-dev installs it): {exc}\n{tail}")
    try:
        yield base_url(port=port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_answer_from_the_local_model_end_to_end(db: Settings, local_llm: str) -> None:
    build_kb(db)
    settings = db.model_copy(update={"openai_base_url": local_llm, "chat_model": MODEL_ALIAS, "agent_mode": "auto"})
    tokens: list[str] = []
    answer = answer_question(
        settings,
        "How do I roll back a failed deploy?",
        on_token=tokens.append,
        generation={"max_tokens": 48, "temperature": 0.0, "k": 3},
    )
    assert answer.generated and answer.model == MODEL_ALIAS
    assert answer.text and "".join(tokens).strip() == answer.text
    assert len(tokens) > 1  # streamed, not delivered in one piece
    assert answer.chunk_ids
    known = {"https://wiki.example.com/deploy-runbook", "https://wiki.example.com/onboarding"}
    assert all(c.uri in known | {"https://mirror.example.com/onboarding-copy"} for c in answer.citations)
    with raw_connection(db) as conn:
        row = conn.execute(
            "SELECT model, prompt_tokens, completion_tokens, generation->>'path', jsonb_array_length(prompt) "
            "FROM answers WHERE id = %s",
            (answer.answer_id,),
        ).fetchone()
    assert row is not None
    model, prompt_tokens, completion_tokens, path, messages = row
    # The tiny model gets the fixed chain, never the tool agent; the server reported its token counts.
    assert (model, path) == (MODEL_ALIAS, "chain")
    # llama.cpp reports no usage on streamed replies: the row then carries an estimate, marked as such.
    assert prompt_tokens > 100 and 0 < completion_tokens <= 4 * 48
    assert messages == 3  # system, the fenced question, the reply


def test_a_question_that_made_the_local_model_loop_ends_within_the_cap(db: Settings, local_llm: str) -> None:
    """SmolLM2 once repeated one paragraph for two minutes on this question; now the penalties, the completion cap
    and the loop guard end it, with the default settings a deployment gets."""
    from ingest.pipeline import ingest_sources
    from tests.conftest import REPO

    ingest_sources(db, [str(REPO / "examples" / "vpn-setup.md")])
    settings = db.model_copy(update={"openai_base_url": local_llm, "chat_model": MODEL_ALIAS})
    started = time.monotonic()
    tokens: list[str] = []
    answer = answer_question(settings, "Which UDP port does WireGuard use?", on_token=tokens.append)
    elapsed = time.monotonic() - started
    assert answer.generated and answer.text
    # llama.cpp streams about a token a chunk (a character split across two tokens comes as one more chunk).
    assert len(tokens) <= settings.max_answer_tokens * 1.05
    assert elapsed < 90, f"took {elapsed:.0f} s"
    guard = RepetitionGuard()
    guard.feed(answer.text + "\n")
    assert not guard.looping, answer.text  # no sentence written three times in what the user is shown
