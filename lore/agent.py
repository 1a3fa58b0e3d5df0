"""Question → Answer: retrieve, then a tool-calling agent or a fixed chain (or search-only), and record it.

Every path ends in `_record`, so each answer (also "I don't know" and search-only ones) is an `answers` row
that feedback can attach to. Paths:
- nothing relevant retrieved → "I don't know" (no model call: it cannot guess from nothing);
- no model configured → search-only: the sentences of the best passages that answer (lore.extract), cited,
  then their sources, labelled as not generated;
- tool-calling model → LangChain v1 `create_agent` with the knowledge-base (and thread) tools;
- other models → one prompt with the retrieved sources fenced as data, one completion.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from psycopg.types.json import Jsonb

from lore import prompts
from lore.agent_tools import (
    SourceBook,
    build_tools,
    history_messages,
    message_record,
    message_text,
    relevant,
    usage_of,
)
from lore.config import Settings
from lore.db import raw_connection
from lore.extract import answer_sentences, group_by_passage
from lore.llm import LLMError, RepetitionGuard, describe_model, get_chat_model, supports_tools, trim_repetition
from lore.logs import kv
from lore.search import ScoredHit, embed_query, search_scored
from lore.types import Answer, Asker, TokenSink, Turn

log = logging.getLogger(__name__)

SEARCH_ONLY_MODEL = "search-only"
# Model calls plus tool calls one agent run may make before it is stopped.
AGENT_RECURSION_LIMIT = 12


class AnswerNotFound(LookupError):
    """No answers row has that id."""


@dataclass
class _Outcome:
    text: str
    model: str
    messages: list[dict[str, Any]]
    generated: bool = True
    knows: bool = True
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def choose_path(settings: Settings, model: BaseChatModel) -> str:
    """'tools' or 'chain' for this model under LORE_AGENT (auto decides by the model's capability)."""
    if settings.agent_mode in ("tools", "chain"):
        return settings.agent_mode
    return "tools" if supports_tools(settings, model) else "chain"


def answer_question(
    settings: Settings,
    question: str,
    *,
    asker: Asker | None = None,
    history: Sequence[Turn] = (),
    on_token: TokenSink | None = None,
    chat_model: BaseChatModel | None = None,
    generation: dict[str, Any] | None = None,
    parent_id: int | None = None,
    thread_reader: Callable[[], list[Turn]] | None = None,
    extra_sources: Sequence[ScoredHit] = (),
) -> Answer:
    """Answer `question` for `asker` from the knowledge base; the answer is recorded and returned with its id.

    `extra_sources` are passages from outside the knowledge base (files shared in the Slack thread), offered
    first and cited like any source."""
    started = time.perf_counter()
    asker = asker or Asker()
    generation = dict(generation or {})
    k = int(generation.get("k", settings.answer_k))
    question = question.strip()
    qvec = embed_query(settings, question)
    hits = [*extra_sources, *_retrieve(settings, question, asker=asker, history=history, k=k, qvec=qvec)]
    model = chat_model if chat_model is not None else get_chat_model(settings, **_model_overrides(generation))
    book = SourceBook()

    if not hits:
        outcome = _Outcome(
            prompts.DONT_KNOW,
            describe_model(model, settings) if model is not None else SEARCH_ONLY_MODEL,
            [],
            generated=False,
            knows=False,
        )
        _emit(on_token, outcome.text)
    elif model is None:
        outcome = _Outcome(search_only_text(settings, qvec, hits, book), SEARCH_ONLY_MODEL, [], generated=False)
        _emit(on_token, outcome.text)
    else:
        path = choose_path(settings, model)
        best_of = int(generation.get("best_of", settings.best_of))
        outcome = _generate(
            settings,
            question,
            model=model,
            path=path,
            best_of=best_of,
            asker=asker,
            history=history,
            hits=hits,
            book=book,
            k=k,
            on_token=on_token,
            thread_reader=thread_reader,
        )
        generation.setdefault("path", path)
        if best_of > 1:
            generation["best_of"] = best_of

    citations = book.citations(outcome.text) if outcome.knows else []
    latency_ms = int((time.perf_counter() - started) * 1000)
    answer = Answer(
        answer_id=None,
        text=outcome.text,
        citations=citations,
        model=outcome.model,
        chunk_ids=list(book.chunk_ids),
        generated=outcome.generated,
        knows=outcome.knows,
        latency_ms=latency_ms,
    )
    generation.update(outcome.extra)
    generation["generated"] = outcome.generated
    answer.answer_id = _record(
        settings,
        question=question,
        qvec=qvec,
        answer=answer,
        asker=asker,
        messages=outcome.messages,
        generation=generation,
        tokens=(outcome.prompt_tokens, outcome.completion_tokens),
        parent_id=parent_id,
    )
    log.info(
        kv(
            "answer",
            answer_id=answer.answer_id,
            model=answer.model,
            path=generation.get("path", "none"),
            chunks=len(answer.chunk_ids),
            latency_ms=latency_ms,
            knows=answer.knows,
        )
    )
    return answer


def _model_overrides(generation: dict[str, Any]) -> dict[str, Any]:
    return {key: generation[key] for key in ("temperature", "max_tokens", "top_p", "seed") if key in generation}


def _retrieve(
    settings: Settings, question: str, *, asker: Asker, history: Sequence[Turn], k: int, qvec: np.ndarray
) -> list[ScoredHit]:
    """Relevant hits for the question; a follow-up in a thread is also tried together with its predecessor."""
    hits = relevant(search_scored(settings, question, asker=asker, k=k, query_embedding=qvec), settings.min_similarity)
    hits = within_sources(hits, asker)
    if hits or not history:
        return hits
    previous = next((t.text for t in reversed(history) if t.role == "user"), None)
    if not previous:
        return hits
    combined = f"{previous}\n{question}"
    return within_sources(relevant(search_scored(settings, combined, asker=asker, k=k), settings.min_similarity), asker)


def within_sources(hits: list[ScoredHit], asker: Asker) -> list[ScoredHit]:
    """Only the hits under the asker's source prefixes (a channel's sources), when it has any."""
    if not asker.source_prefixes:
        return hits
    return [h for h in hits if h.hit.uri.startswith(tuple(asker.source_prefixes))]


def search_only_text(settings: Settings, qvec: np.ndarray, hits: list[ScoredHit], book: SourceBook) -> str:
    """The answer without a model: the sentences that answer (lore.extract), cited, then the sources; whole
    passages only when no sentence of them is readable prose."""
    sources = book.add(hits)
    chosen = answer_sentences(settings, qvec, hits)
    if not chosen:
        return prompts.search_only_answer(sources)
    numbers = {uri: source.number for uri, source in book.sources.items()}
    quotes = [(numbers[hits[passage].hit.uri], text) for passage, text in group_by_passage(chosen)]
    return prompts.extractive_answer(quotes, sources)


def _emit(on_token: TokenSink | None, text: str) -> None:
    if on_token is not None:
        on_token(text)


def _generate(
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
) -> _Outcome:
    """One answer, or the best of `best_of` candidates chosen by the reward model."""
    initial = book.add(hits)

    def once(sink: TokenSink | None) -> _Outcome:
        if path == "tools":
            return _run_agent(
                settings, question, model=model, asker=asker, history=history, sources=initial, book=book, k=k,
                on_token=sink, thread_reader=thread_reader,
            )  # fmt: skip
        return _run_chain(settings, question, model=model, history=history, sources=initial, on_token=sink)

    if best_of <= 1:
        return once(on_token)
    candidates = [once(None) for _ in range(best_of)]
    index = _choose_best(settings, question, [c.text for c in candidates], [s.text for s in (h.hit for h in hits)])
    chosen = candidates[index]
    _emit(on_token, chosen.text)
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


def _run_chain(
    settings: Settings,
    question: str,
    *,
    model: BaseChatModel,
    history: Sequence[Turn],
    sources: list[prompts.Source],
    on_token: TokenSink | None,
) -> _Outcome:
    messages: list[BaseMessage] = [
        SystemMessage(content=prompts.SYSTEM_PROMPT),
        *history_messages(history),
        HumanMessage(content=prompts.chain_question(question, sources)),
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
) -> _Outcome:
    """A model-written outcome with its token counts: reported usage, or an estimate marked as such."""
    prompt_tokens, completion_tokens = usage_of(produced)
    if prompt_tokens is None:
        prompt_tokens, completion_tokens = _estimate_tokens(record)
        extra["tokens_estimated"] = True
    return _Outcome(
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
) -> _Outcome:
    from langchain.agents import create_agent

    tools = build_tools(settings, asker=asker, book=book, k=k, thread_reader=thread_reader)
    # Typed loosely: the compiled graph's overloads do not accept a plain message dict under mypy.
    agent: Any = create_agent(model, tools, system_prompt=prompts.AGENT_SYSTEM_PROMPT)
    inputs: list[BaseMessage] = [
        *history_messages(history),
        HumanMessage(content=prompts.agent_question(question, sources)),
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


def _record(
    settings: Settings,
    *,
    question: str,
    qvec: np.ndarray,
    answer: Answer,
    asker: Asker,
    messages: list[dict[str, Any]],
    generation: dict[str, Any],
    tokens: tuple[int | None, int | None],
    parent_id: int | None,
) -> int:
    citations = [{"number": c.number, "uri": c.uri, "title": c.title} for c in answer.citations]
    with raw_connection(settings) as conn:
        row = conn.execute(
            """INSERT INTO answers (team_id, channel_id, thread_ts, user_id, surface, private, question,
                   question_embedding, answer, model, prompt, citations, chunk_ids, generation, latency_ms,
                   prompt_tokens, completion_tokens, parent_id)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                asker.team_id,
                asker.channel_id,
                asker.thread_ts,
                asker.user_id,
                asker.surface,
                asker.private or asker.is_dm,
                question,
                np.asarray(qvec, dtype=np.float32),
                answer.text,
                answer.model,
                Jsonb(messages),
                Jsonb(citations),
                answer.chunk_ids,
                Jsonb(generation),
                answer.latency_ms,
                tokens[0],
                tokens[1],
                parent_id,
            ),
        ).fetchone()
    assert row is not None
    return int(row[0])


def attach_slack_message(
    settings: Settings, answer_id: int, *, channel_id: str, message_ts: str, thread_ts: str | None, team_id: str | None
) -> None:
    """Link an answer row to the Slack message that carries it (reactions on it become votes)."""
    with raw_connection(settings) as conn:
        updated = conn.execute(
            """UPDATE answers SET channel_id = %s, message_ts = %s,
                   thread_ts = COALESCE(%s, thread_ts), team_id = COALESCE(%s, team_id)
               WHERE id = %s""",
            (channel_id, message_ts, thread_ts, team_id, answer_id),
        ).rowcount
    if updated == 0:
        raise AnswerNotFound(f"no answer with id {answer_id}")
