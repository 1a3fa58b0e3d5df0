"""The agent's LangChain parts: the knowledge-base and thread tools, chat messages and their records.

The search tool's permission scope is bound from the asker when the tool is built: the model only ever
supplies the query text, so no document (or instruction inside one) can widen what it searches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from lore.config import Settings
from lore.prompts import format_documents, format_thread
from lore.search import search_scored
from lore.sources import SourceBook, relevant
from lore.types import Asker, Turn

# Earlier turns kept as context, and the most characters of each.
MAX_HISTORY_TURNS = 12
MAX_TURN_CHARS = 2000


class _SearchArgs(BaseModel):
    query: str = Field(description="What to look for, in your own words (a few keywords or a question).")


def build_tools(
    settings: Settings,
    *,
    asker: Asker,
    book: SourceBook,
    k: int,
    thread_reader: Callable[[], list[Turn]] | None = None,
) -> list[BaseTool]:
    """The agent's tools, with the asker's permission scope fixed inside them."""

    def search_knowledge_base(query: str) -> str:
        hits = relevant(search_scored(settings, query, asker=asker, k=k), settings.min_similarity)
        if not hits:
            return "No relevant sources found for this query."
        return "<documents>\n" + format_documents(book.add(hits)) + "\n</documents>"

    tools: list[BaseTool] = [
        StructuredTool.from_function(
            search_knowledge_base,
            name="search_knowledge_base",
            description="Search the team's knowledge base. Returns numbered sources to cite like [1].",
            args_schema=_SearchArgs,
        )
    ]
    if thread_reader is not None:
        reader = thread_reader

        def read_current_thread() -> str:
            return format_thread(reader())

        tools.append(
            StructuredTool.from_function(
                read_current_thread,
                name="read_current_thread",
                description="Read the earlier messages of the current conversation (Slack thread).",
            )
        )
    return tools


def history_messages(history: Sequence[Turn]) -> list[BaseMessage]:
    """Earlier turns as chat messages, most recent last, long ones cut."""
    messages: list[BaseMessage] = []
    for turn in list(history)[-MAX_HISTORY_TURNS:]:
        text = turn.text if len(turn.text) <= MAX_TURN_CHARS else turn.text[:MAX_TURN_CHARS] + " …"
        messages.append(AIMessage(content=text) if turn.role == "assistant" else HumanMessage(content=text))
    return messages


def message_text(message: BaseMessage) -> str:
    return str(message.text)


def message_record(message: BaseMessage) -> dict[str, Any]:
    """A message as stored in answers.prompt (OpenAI-style roles, tool calls kept)."""
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": message_text(message)}
    if isinstance(message, HumanMessage):
        return {"role": "user", "content": message_text(message)}
    if isinstance(message, ToolMessage):
        return {
            "role": "tool",
            "name": message.name,
            "tool_call_id": message.tool_call_id,
            "content": message_text(message),
        }
    if isinstance(message, AIMessage):
        record: dict[str, Any] = {"role": "assistant", "content": message_text(message)}
        if message.tool_calls:
            record["tool_calls"] = [
                {"id": c.get("id"), "name": c["name"], "args": c["args"]} for c in message.tool_calls
            ]
        return record
    return {"role": message.type, "content": message_text(message)}


def usage_of(messages: Sequence[BaseMessage]) -> tuple[int | None, int | None]:
    """Prompt and completion tokens summed over the model's replies (None when the server reported none)."""
    prompt = completion = 0
    seen = False
    for message in messages:
        usage = getattr(message, "usage_metadata", None)
        if usage:
            seen = True
            prompt += int(usage.get("input_tokens", 0))
            completion += int(usage.get("output_tokens", 0))
    return (prompt, completion) if seen else (None, None)
