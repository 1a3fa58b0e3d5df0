"""Question → Answer: retrieve, then a tool-calling agent or a fixed chain (or search-only), and record it.

Every path ends in `_record`, so each answer (also "I don't know" and search-only ones) is an `answers` row
that feedback can attach to. Paths:
- nothing relevant retrieved → "I don't know" (no model call: it cannot guess from nothing);
- no model configured → search-only: the sentences of the best passages that answer (lore.extract), cited,
  then their sources, labelled as not generated;
- tool-calling model (lore.generate) → LangChain v1 `create_agent` with the knowledge-base (and thread) tools;
- other models → one prompt with the retrieved sources fenced as data, one completion.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from psycopg.types.json import Jsonb

from lore import prompts
from lore.config import Settings
from lore.db import raw_connection
from lore.extract import answer_sentences, group_by_passage
from lore.llm import describe_model, get_chat_model
from lore.logs import kv
from lore.search import ScoredHit, embed_query, search_scored
from lore.sources import SourceBook, relevant
from lore.types import Answer, Asker, ImagePart, Outcome, TokenSink, Turn

if TYPE_CHECKING:  # the model paths (lore.generate) import LangChain only once a model is configured
    from langchain_core.language_models import BaseChatModel

log = logging.getLogger(__name__)

SEARCH_ONLY_MODEL = "search-only"


class AnswerNotFound(LookupError):
    """No answers row has that id."""


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
    images: Sequence[ImagePart] = (),
) -> Answer:
    """Answer `question` for `asker` from the knowledge base; the answer is recorded and returned with its id.

    `extra_sources` are passages from outside the knowledge base (files shared in the Slack thread), offered
    first and cited like any source; `images` (shared in the thread too) go to the model with the question, for
    callers that know it can see them (lore.llm.supports_vision)."""
    started = time.perf_counter()
    asker = asker or Asker()
    generation = dict(generation or {})
    k = int(generation.get("k", settings.answer_k))
    question = question.strip()
    qvec = embed_query(settings, question)
    hits = [*extra_sources, *_retrieve(settings, question, asker=asker, history=history, k=k, qvec=qvec)]
    model = chat_model if chat_model is not None else get_chat_model(settings, **_model_overrides(generation))
    book = SourceBook()
    images = tuple(images) if model is not None else ()  # a search-only answer has no one to show them to

    if not hits and not images:
        outcome = Outcome(
            prompts.DONT_KNOW,
            describe_model(model, settings) if model is not None else SEARCH_ONLY_MODEL,
            [],
            generated=False,
            knows=False,
        )
        _emit(on_token, outcome.text)
    elif model is None:
        outcome = Outcome(search_only_text(settings, qvec, hits, book), SEARCH_ONLY_MODEL, [], generated=False)
        _emit(on_token, outcome.text)
    else:
        from lore.generate import choose_path, generate

        path = choose_path(settings, model)
        best_of = int(generation.get("best_of", settings.best_of))
        outcome = generate(
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
            images=images,
        )
        generation.setdefault("path", path)
        if images:  # the answers row keeps their names; their bytes stay out of it
            generation["images"] = [image.name for image in images]
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
