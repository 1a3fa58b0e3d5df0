"""The answer paths that call a chat model: a tool-calling agent, a fixed chain, and best-of-n.

Imported by lore.agent only once a model is configured: LangChain costs over a second to import, and the
search-only path (`lore ask` without a model, a cold answer process) must not pay it.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage

from lore import prompts
from lore.agent_tools import build_tools, history_messages, message_record, message_text, usage_of
from lore.config import Settings
from lore.llm import LLMError, RepetitionGuard, describe_model, supports_tools, trim_repetition
from lore.logs import kv
from lore.search import ScoredHit
from lore.sources import SourceBook
from lore.types import Asker, ImagePart, Outcome, TokenSink, Turn

log = logging.getLogger(__name__)

# Model calls plus tool calls one agent run may make before it is stopped.
AGENT_RECURSION_LIMIT = 12


def choose_path(settings: Settings, model: BaseChatModel) -> str:
    """'tools' or 'chain' for this model under LORE_AGENT (auto decides by the model's capability)."""
    if settings.agent_mode in ("tools", "chain"):
        return settings.agent_mode
    return "tools" if supports_tools(settings, model) else "chain"


def generate(
    settings: Settings,
    question: str,
    *,
    model: BaseChatModel,
    path: str,
    best_of: int,
    asker: Asker,
    history: Sequence[Turn],
    hits: list[ScoredHit],
    book: SourceBook,
    k: int,
    on_token: TokenSink | None,
    thread_reader: Callable[[], list[Turn]] | None,
    images: Sequence[ImagePart] = (),
) -> Outcome:
    """One answer, or the best of `best_of` candidates chosen by the reward model."""
    initial = book.add(hits)

    def once(sink: TokenSink | None) -> Outcome:
        if path == "tools":
            return _run_agent(
                settings, question, model=model, asker=asker, history=history, sources=initial, book=book, k=k,
                on_token=sink, thread_reader=thread_reader, images=images,
            )  # fmt: skip
        return _run_chain(
            settings, question, model=model, history=history, sources=initial, on_token=sink, images=images
        )

    if best_of <= 1:
        return once(on_token)
    candidates = [once(None) for _ in range(best_of)]
    index = _choose_best(settings, question, [c.text for c in candidates], [s.text for s in (h.hit for h in hits)])
    chosen = candidates[index]
    if on_token is not None:
        on_token(chosen.text)
    chosen.extra = {"candidates": [c.text for c in candidates], "chosen_index": index}
    chosen.prompt_tokens = _sum(c.prompt_tokens for c in candidates)
    chosen.completion_tokens = _sum(c.completion_tokens for c in candidates)
    return chosen


def _sum(values: Any) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _choose_best(settings: Settings, question: str, candidates: list[str], context: list[str]) -> int:
    try:
        from lore.reward import choose_best
    except ImportError:
        return 0
    index = choose_best(settings, question=question, candidates=candidates, context=context)
    return index if 0 <= index < len(candidates) else 0


def _knows(text: str) -> bool:
    return not text.strip().lower().lstrip("_*\"' ").startswith(("i don't know", "i do not know", "i don\u2019t know"))


def _human(text: str, images: Sequence[ImagePart]) -> HumanMessage:
    """The question's message: its text, then each image as an OpenAI-format image content part (a data URL)."""
    if not images:
        return HumanMessage(content=text)
    parts: list[str | dict[str, Any]] = [{"type": "text", "text": text + prompts.images_note([i.name for i in images])}]
    for image in images:
        url = f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return HumanMessage(content=parts)


def _run_chain(
    settings: Settings,
    question: str,
    *,
    model: BaseChatModel,
    history: Sequence[Turn],
    sources: list[prompts.Source],
    on_token: TokenSink | None,
    images: Sequence[ImagePart] = (),
) -> Outcome:
    messages: list[BaseMessage] = [
        SystemMessage(content=prompts.SYSTEM_PROMPT),
        *history_messages(history),
        _human(prompts.chain_question(question, sources), images),
    ]
    try:
        if on_token is None:
            reply: BaseMessage = model.invoke(messages)
        else:
            merged: AIMessageChunk | None = None
            guard = RepetitionGuard()
            for chunk in model.stream(messages):
                piece = message_text(chunk)
                if piece:
                    on_token(piece)
                merged = chunk if merged is None else merged + chunk
                if piece and guard.feed(piece):
                    log.warning(kv("answer_loop_stopped", chars=len(guard.text)))
                    break  # closing the stream ends the request: the server stops generating
            reply = merged if merged is not None else AIMessage(content="")
    except Exception as exc:
        raise _llm_error(settings, exc) from exc
    text = trim_repetition(message_text(reply))
    record = [message_record(m) for m in messages] + [{"role": "assistant", "content": text}]
    return _generated(settings, model, text=text, record=record, produced=[reply], knows=_knows(text), extra={})


def _generated(
    settings: Settings,
    model: BaseChatModel,
    *,
    text: str,
    record: list[dict[str, Any]],
    produced: Sequence[BaseMessage],
    knows: bool,
    extra: dict[str, Any],
) -> Outcome:
    """A model-written outcome with its token counts: reported usage, or an estimate marked as such."""
    prompt_tokens, completion_tokens = usage_of(produced)
    if prompt_tokens is None:
        prompt_tokens, completion_tokens = _estimate_tokens(record)
        extra["tokens_estimated"] = True
    return Outcome(
        text=text,
        model=describe_model(model, settings),
        messages=record,
        knows=knows,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        extra=extra,
    )


def _estimate_tokens(record: list[dict[str, Any]]) -> tuple[int, int]:
    """(prompt, completion) tokens at ~4 characters a token, for servers that report no usage when
    streaming (llama.cpp); the answer row marks them as estimated."""
    prompt = sum(len(str(m.get("content", ""))) for m in record[:-1])
    completion = len(str(record[-1].get("content", ""))) if record else 0
    return max(1, round(prompt / 4)), round(completion / 4)


def _run_agent(
    settings: Settings,
    question: str,
    *,
    model: BaseChatModel,
    asker: Asker,
    history: Sequence[Turn],
    sources: list[prompts.Source],
    book: SourceBook,
    k: int,
    on_token: TokenSink | None,
    thread_reader: Callable[[], list[Turn]] | None,
    images: Sequence[ImagePart] = (),
) -> Outcome:
    from langchain.agents import create_agent

    tools = build_tools(settings, asker=asker, book=book, k=k, thread_reader=thread_reader)
    # Typed loosely: the compiled graph's overloads do not accept a plain message dict under mypy.
    agent: Any = create_agent(model, tools, system_prompt=prompts.AGENT_SYSTEM_PROMPT)
    inputs: list[BaseMessage] = [
        *history_messages(history),
        _human(prompts.agent_question(question, sources), images),
    ]
    config: dict[str, Any] = {"recursion_limit": AGENT_RECURSION_LIMIT}
    try:
        if on_token is None:
            state = agent.invoke({"messages": inputs}, config=config)
        else:
            state = {}
            for mode, payload in agent.stream(
                {"messages": inputs},
                config=config,
                stream_mode=["messages", "values"],
            ):
                if mode == "values":
                    state = payload
                    continue
                chunk, metadata = payload
                if isinstance(chunk, AIMessageChunk) and not chunk.tool_call_chunks:
                    piece = message_text(chunk)
                    if piece and metadata.get("langgraph_node") == "model":
                        on_token(piece)
    except Exception as exc:
        raise _llm_error(settings, exc) from exc
    messages: list[BaseMessage] = list(state.get("messages", []))
    produced = messages[len(inputs) :]
    final = next((m for m in reversed(produced) if isinstance(m, AIMessage) and not m.tool_calls), None)
    text = trim_repetition(message_text(final)) if final is not None else ""
    record = [{"role": "system", "content": prompts.AGENT_SYSTEM_PROMPT}] + [message_record(m) for m in messages]
    extra: dict[str, Any] = {"tool_calls": sum(len(m.tool_calls) for m in produced if isinstance(m, AIMessage))}
    return _generated(
        settings, model, text=text, record=record, produced=produced, knows=bool(text) and _knows(text), extra=extra
    )


def _llm_error(settings: Settings, exc: Exception) -> LLMError:
    where = settings.openai_base_url or "the OpenAI API"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return LLMError(f"the chat model at {where} failed: {type(exc).__name__}: {first}".rstrip(": "))
