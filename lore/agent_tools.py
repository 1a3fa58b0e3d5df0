"""The agent's parts: numbered sources, the knowledge-base and thread tools, citations, message records.

The search tool's permission scope is bound from the asker when the tool is built: the model only ever
supplies the query text, so no document (or instruction inside one) can widen what it searches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from lore.config import Settings
from lore.prompts import Source, format_documents, format_thread
from lore.search import ScoredHit, search_scored
from lore.types import Asker, Citation, Turn

# Earlier turns kept as context, and the most characters of each.
MAX_HISTORY_TURNS = 12
MAX_TURN_CHARS = 2000
_CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def relevant(scored: Sequence[ScoredHit], min_similarity: float) -> list[ScoredHit]:
    """The hits close enough to the question to answer from (a full-text match lowers the bar a little)."""
    out = []
    for s in scored:
        similarity = s.similarity if s.similarity is not None else 0.0
        if similarity >= min_similarity or (s.fulltext and similarity >= min_similarity - 0.1):
            out.append(s)
    return out


@dataclass
class SourceBook:
    """Numbers documents as they enter the prompt: [n] always means the same document within an answer."""

    sources: dict[str, Source] = field(default_factory=dict)  # by uri, in numbering order
    chunk_ids: list[int] = field(default_factory=list)

    def add(self, hits: Sequence[ScoredHit]) -> list[Source]:
        """Register hits; returns the sources they belong to (with the passages of these hits only)."""
        grouped: dict[str, list[str]] = {}
        new: dict[str, list[str]] = {}
        for scored in hits:
            hit = scored.hit
            if hit.uri not in self.sources:
                number = len(self.sources) + 1
                self.sources[hit.uri] = Source(number, hit.uri, hit.title or hit.uri, ())
            passage = f"{hit.heading}\n{hit.text}" if hit.heading else hit.text
            grouped.setdefault(hit.uri, []).append(passage)
            if hit.chunk_id not in self.chunk_ids:
                self.chunk_ids.append(hit.chunk_id)
                new.setdefault(hit.uri, []).append(passage)
        out = []
        for uri, passages in grouped.items():
            known = self.sources[uri]
            self.sources[uri] = Source(known.number, uri, known.title, (*known.passages, *new.get(uri, [])))
            out.append(Source(known.number, uri, known.title, tuple(passages)))
        return out

    def all(self) -> list[Source]:
        return list(self.sources.values())

    def citations(self, answer_text: str) -> list[Citation]:
        """Sources the answer cites by number; when it cites none, every source it was given."""
        by_number = {s.number: s for s in self.sources.values()}
        cited: list[int] = []
        for group in _CITE.findall(answer_text):
            for part in re.split(r"[,;]", group):
                number = int(part.strip())
                if number in by_number and number not in cited:
                    cited.append(number)
        numbers = sorted(cited) if cited else sorted(by_number)
        return [Citation(n, by_number[n].uri, by_number[n].title) for n in numbers]


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
