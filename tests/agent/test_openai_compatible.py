"""Answers through the real `openai` client (langchain-openai) against a scripted OpenAI-compatible server."""

from __future__ import annotations

import pytest

from harness.openai_server import FakeOpenAI, Reply
from lore.agent import answer_question
from lore.config import Settings
from lore.db import raw_connection
from lore.llm import LLMError, get_chat_model, supports_tools, supports_vision
from lore.types import ImagePart

QUESTION = "How do I roll back a failed deploy?"


def _configured(settings: Settings, fake: FakeOpenAI, **extra: object) -> Settings:
    update = {"openai_base_url": fake.url, "chat_model": "fake-model", "llm_timeout_s": 5.0, **extra}
    return settings.model_copy(update=update)


def test_no_configuration_means_search_only(settings: Settings) -> None:
    assert get_chat_model(settings) is None


def test_base_url_without_key_uses_a_placeholder_key(settings: Settings, fake_openai: FakeOpenAI) -> None:
    model = get_chat_model(settings.model_copy(update={"openai_base_url": fake_openai.url}))
    assert model is not None
    fake_openai.reply("hello")
    assert model.invoke("hi").content == "hello"
    assert fake_openai.completions[0].headers.get("authorization") == "Bearer not-needed"


def test_streamed_chain_answer_through_the_openai_client(
    db: Settings, kb: dict[str, int], fake_openai: FakeOpenAI
) -> None:
    settings = _configured(db, fake_openai)
    fake_openai.reply(Reply("Run make rollback VERSION=previous [1].", prompt_tokens=321, completion_tokens=12))
    tokens: list[str] = []
    answer = answer_question(settings, QUESTION, on_token=tokens.append)
    assert "".join(tokens) == answer.text == "Run make rollback VERSION=previous [1]."
    assert answer.model == "fake-model" and answer.generated
    assert [c.uri for c in answer.citations] == ["https://wiki.example.com/deploy-runbook"]
    (request,) = fake_openai.completions
    assert request.body["stream"] is True and request.body["model"] == "fake-model"
    assert request.messages[0]["role"] == "system" and "<documents>" in request.messages[-1]["content"]
    assert "tools" not in request.body  # a local server with an unknown model gets the chain
    with raw_connection(db) as conn:
        row = conn.execute("SELECT prompt_tokens, completion_tokens, model FROM answers").fetchone()
    assert row == (321, 12, "fake-model")


def test_tool_calls_through_the_openai_client(db: Settings, kb: dict[str, int], fake_openai: FakeOpenAI) -> None:
    settings = _configured(db, fake_openai, agent_mode="tools")
    fake_openai.reply(
        Reply(tool_calls=[{"name": "search_knowledge_base", "arguments": {"query": "VPN from home"}, "id": "c1"}]),
        Reply("See [1] and [2]."),
    )
    answer = answer_question(settings, QUESTION)
    first, second = fake_openai.completions
    assert [t["function"]["name"] for t in first.body["tools"]] == ["search_knowledge_base"]
    assert set(first.body["tools"][0]["function"]["parameters"]["properties"]) == {"query"}
    tool_reply = next(m for m in second.messages if m["role"] == "tool")
    assert "WireGuard" in tool_reply["content"]
    assert {c.uri for c in answer.citations} == {
        "https://wiki.example.com/deploy-runbook",
        "https://wiki.example.com/onboarding",
    }


@pytest.mark.parametrize("fault", ["status", "delay", "malformed"])
def test_model_failures_raise_a_clear_error(
    db: Settings, kb: dict[str, int], fake_openai: FakeOpenAI, fault: str
) -> None:
    settings = _configured(db, fake_openai, llm_timeout_s=1.0)
    if fault == "status":
        fake_openai.fail(500, times=5)
    elif fault == "delay":
        fake_openai.delay(3.0, times=5)
    else:
        fake_openai.malformed_stream(times=5)
    with pytest.raises(LLMError, match=fake_openai.url):
        answer_question(settings, QUESTION, on_token=lambda _: None)
    with raw_connection(db) as conn:
        row = conn.execute("SELECT count(*) FROM answers").fetchone()
    assert row == (0,)  # a failed answer is not recorded as if it were one


def test_auto_mode_by_model_and_server(settings: Settings) -> None:
    local = settings.model_copy(update={"openai_base_url": "http://127.0.0.1:8008/v1"})
    hosted = settings.model_copy(update={"openai_base_url": None})

    def model_for(s: Settings, name: str) -> object:
        model = get_chat_model(s.model_copy(update={"chat_model": name}))
        assert model is not None
        return model

    assert not supports_tools(local, model_for(local, "smollm2"))  # type: ignore[arg-type]
    assert not supports_tools(local, model_for(local, "some-local-gguf"))  # type: ignore[arg-type]
    assert supports_tools(local, model_for(local, "qwen2.5-7b-instruct"))  # type: ignore[arg-type]
    assert supports_tools(hosted, model_for(hosted, "gpt-4o-mini"))  # type: ignore[arg-type]
    assert not supports_tools(hosted, model_for(hosted, "SmolLM2-360M-Instruct"))  # type: ignore[arg-type]


def test_vision_by_model_name_unless_set(settings: Settings) -> None:
    def vision(name: str | None, mode: str = "auto") -> bool:
        return supports_vision(settings.model_copy(update={"chat_model": name, "vision": mode}))

    for name in ["gpt-4o-mini", "gpt-4.1", "gpt-5-nano", "o4-mini", "llava:13b", "qwen2.5-vl-7b-instruct"]:
        assert vision(name), name
    for name in ["gpt-3.5-turbo", "gpt-4", "o3-mini", "o1-mini", "qwen2.5-7b-instruct", "smollm2", "local-model"]:
        assert not vision(name), name
    assert vision("local-model", "on") and not vision("gpt-4o", "off")
    search_only = {"chat_model": None, "openai_api_key": None, "openai_base_url": None, "vision": "on"}
    assert not supports_vision(settings.model_copy(update=search_only))  # no model: nothing to show images to


def test_images_reach_an_openai_compatible_server_as_image_parts(
    db: Settings, kb: dict[str, int], fake_openai: FakeOpenAI
) -> None:
    settings = _configured(db, fake_openai, chat_model="llava-1.6-mistral-7b")
    assert supports_vision(settings)
    fake_openai.reply("The diagram shows make rollback [1].")
    image = ImagePart(name="diagram.png", media_type="image/png", data=b"\x89PNG\r\n\x1a\n-pixels-")
    answer_question(settings, QUESTION, images=[image], on_token=lambda _: None)
    (request,) = fake_openai.completions
    text, part = request.messages[-1]["content"]
    assert text["type"] == "text" and QUESTION in text["text"]
    assert part == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgotcGl4ZWxzLQ=="}}
