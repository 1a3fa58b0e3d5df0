"""Scripted chat models for agent tests (LangChain's fake chat models) and a small knowledge base."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import Field

from lore.config import Settings
from tests.fakes.fixtures import fake_openai  # noqa: F401 - a fixture for this package's tests
from tests.search.conftest import build_kb


class ScriptedChat(GenericFakeChatModel):
    """GenericFakeChatModel that records the messages of every call (no tool binding: a chain-only model)."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        """Like a real streaming server: text word by word, then tool calls and token usage in the last chunk."""
        message = self._generate(messages, stop=stop, run_manager=run_manager, **kwargs).generations[0].message
        assert isinstance(message, AIMessage)
        text = str(message.content or "")
        for token in [t for t in re.split(r"(\s)", text) if t]:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token, id=message.id))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        tool_chunks = [
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c.get("id"), "index": i}
            for i, c in enumerate(message.tool_calls)
        ]
        last = AIMessageChunk(
            content="", id=message.id, tool_call_chunks=tool_chunks, usage_metadata=message.usage_metadata
        )
        yield ChatGenerationChunk(message=last)


class ToolScriptedChat(ScriptedChat):
    """A scripted model that accepts tools, as tool-calling models do; its script may emit tool calls."""

    bound_tools: list[str] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolScriptedChat:  # type: ignore[override]
        self.bound_tools = [getattr(t, "name", None) or t["function"]["name"] for t in tools]
        return self


def script(*replies: AIMessage | str) -> Iterator[AIMessage | str]:
    return iter(list(replies))


def usage(text: str, *, prompt: int = 40, completion: int = 9) -> AIMessage:
    return AIMessage(
        content=text,
        usage_metadata={"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion},
    )


@pytest.fixture
def kb(db: Settings) -> dict[str, int]:
    return build_kb(db)
