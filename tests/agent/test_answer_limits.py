"""Answers that stop: the completion cap reaches the model, and a stream that loops is ended and trimmed."""

from __future__ import annotations

from itertools import repeat

import pytest
from langchain_core.messages import AIMessage

from lore.agent import answer_question
from lore.config import Settings
from lore.llm import RepetitionGuard, get_chat_model, trim_repetition
from tests.agent.conftest import ScriptedChat

PARAGRAPH = "To roll back, run shipyard rollback with the release id. It restores the previous build in minutes.\n\n"


def test_a_paragraph_written_over_and_over_is_ended_after_its_third_pass() -> None:
    guard = RepetitionGuard()
    fed = 0
    for word in (PARAGRAPH * 200).split(" "):
        fed += 1
        if guard.feed(word + " "):
            break
    assert guard.looping
    assert fed < 3 * len(PARAGRAPH.split(" ")) + 5  # stopped at the start of the third pass, not at the end
    assert trim_repetition(guard.text) == PARAGRAPH.strip()


def test_text_without_a_loop_is_left_alone() -> None:
    text = "Use shipyard rollback [1]. Short. Short. Short. It takes four minutes [1].\n\nAsk #deploys if stuck [2]."
    guard = RepetitionGuard()
    assert not any(guard.feed(piece + " ") for piece in text.split(" "))
    assert trim_repetition(text) == text  # short sentences ("Short.") may repeat: they are not a loop


def test_a_looping_model_stream_ends_and_the_answer_keeps_one_copy(kb: dict[str, int], db: Settings) -> None:
    looping = AIMessage(content=PARAGRAPH * 5000)  # ~85,000 words: reading it all would take far longer than this test
    model = ScriptedChat(messages=repeat(looping))
    tokens: list[str] = []
    answer = answer_question(db, "How do I roll back a failed deploy?", chat_model=model, on_token=tokens.append)
    assert answer.generated
    assert answer.text == PARAGRAPH.strip()
    assert len(tokens) < 200  # the stream was closed early, not drained


def test_the_completion_cap_and_local_penalties_reach_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORE_MAX_ANSWER_TOKENS", "321")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    local = get_chat_model(Settings(_env_file=None))  # type: ignore[call-arg]
    assert local is not None
    params = local._default_params  # type: ignore[attr-defined]
    assert params["max_completion_tokens"] == 321 and params["frequency_penalty"] > 0
    # llama.cpp's server reads max_tokens, not the client's max_completion_tokens.
    assert params["extra_body"] == {"repeat_penalty": pytest.approx(1.15), "max_tokens": 321}
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real-000000000000")
    hosted = get_chat_model(Settings(_env_file=None))  # type: ignore[call-arg]
    assert hosted is not None
    hosted_params = hosted._default_params  # type: ignore[attr-defined]
    assert hosted_params["max_completion_tokens"] == 321 and "extra_body" not in hosted_params
