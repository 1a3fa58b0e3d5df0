"""A question to answer, as plain data: run on a Bolt thread, or handed to answer processes (`pool.py`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from slack_sdk import WebClient

from bot import thread_files
from bot.answering import answer_failed, answer_in_thread, post_apology
from bot.metrics import record_error
from bot.render import comparison_blocks
from bot.state import BotState
from lore.logs import kv
from lore.types import Asker, ImagePart, Turn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerJob:
    """Everything needed to answer in a thread; picklable, so another process can run it."""

    question: str
    channel_id: str
    thread_ts: str
    user_id: str | None
    team_id: str | None
    bot_user_id: str | None = None
    channel_type: str | None = None
    # Read the thread's earlier messages (before this ts) as history; None for a new thread.
    history_before_ts: str | None = None
    # Regenerations: the question is the last user turn before the first answer, so it is left out.
    drop_last_user_turn: bool = False
    parent_id: int | None = None
    generation: dict[str, Any] | None = field(default=None, hash=False)
    # After answering, post "Which is better?" between this answer and the new one.
    compare_with: int | None = None
    # A DM in the agent messaging experience: the channel the asker is viewing (app_context_changed).
    context_channel: str | None = None
    # A channel in auto mode: answer only when the best passage clears LORE_AUTO_ANSWER_MIN_SIMILARITY.
    auto: bool = False
    # The channel's sources (/lore config): the uri prefixes the answer may draw on.
    source_prefixes: tuple[str, ...] = ()
    # Files shared with the question (the event's `files`): read for this thread's answers only.
    files: tuple[dict[str, Any], ...] = field(default=(), hash=False)


def submit_job(state: BotState, client: WebClient, job: AnswerJob) -> None:
    """Answer now on this (Bolt) thread, or hand the job to the answer processes."""
    if state.pool is not None:
        state.pool.submit(job)
    else:
        perform(state, client, job)


def perform(state: BotState, client: WebClient, job: AnswerJob) -> None:
    try:
        history, asker = _context(state, client, job)
    except Exception:
        # Reading the thread or the asker's channels failed in a way their own handling does not cover (the
        # network, a malformed reply): no answer without them, and never silence either.
        ref = answer_failed(channel_id=job.channel_id, thread_ts=job.thread_ts, stage="context")
        post_apology(client, channel_id=job.channel_id, thread_ts=job.thread_ts, ref=ref)
        return
    if job.auto and not confident(state, job.question, asker):
        log.info(kv("auto_answer_skipped", channel=job.channel_id, ts=job.thread_ts))
        return  # auto mode stays silent rather than guess
    extra_sources, images = thread_sources(state, client, job)
    answer = answer_in_thread(
        state,
        client,
        extra_sources=extra_sources,
        images=images,
        question=job.question,
        asker=asker,
        channel_id=job.channel_id,
        thread_ts=job.thread_ts,
        history=history,
        parent_id=job.parent_id,
        generation=job.generation,
    )
    if job.compare_with is not None and answer is not None and answer.answer_id is not None:
        client.chat_postMessage(
            channel=job.channel_id,
            thread_ts=job.thread_ts,
            text="Which is better?",
            blocks=comparison_blocks(job.compare_with, answer.answer_id),
        )
        log.info(kv("comparison_offered", first=job.compare_with, second=answer.answer_id))


def confident(state: BotState, question: str, asker: Asker) -> bool:
    """Does the best passage the asker may see clear the auto-answer bar?"""
    from lore.agent import within_sources
    from lore.search import search_scored

    hits = within_sources(search_scored(state.settings, question, asker=asker, k=5), asker)
    best = max((h.similarity for h in hits if h.similarity is not None), default=None)
    return best is not None and best >= state.settings.auto_answer_min_similarity


def thread_sources(state: BotState, client: WebClient, job: AnswerJob) -> tuple[list[Any], list[ImagePart]]:
    """The passages of the thread's files closest to the question, and its images for a model that can see them;
    a line in the thread for each file that could not be read. Never fatal: the answer then uses what could be
    read, and the knowledge base."""
    if not job.files and not job.history_before_ts:
        return [], []
    token = state.settings.slack_bot_token
    try:
        entries = thread_files.thread_file_entries(
            client,
            channel_id=job.channel_id,
            thread_ts=job.thread_ts,
            files=job.files,
            in_thread=job.history_before_ts is not None,
        )
        if not entries or token is None:
            return [], []
        found = thread_files.read_thread_files(state.settings, token.get_secret_value(), entries)
        if found.notes:
            client.chat_postMessage(channel=job.channel_id, thread_ts=job.thread_ts, text="\n".join(found.notes))
        return thread_files.best_passages(state.settings, job.question, found), found.images
    except Exception:
        record_error("thread_files")
        log.exception(kv("thread_files_failed", channel=job.channel_id, thread_ts=job.thread_ts))
        return [], []


def _context(state: BotState, client: WebClient, job: AnswerJob) -> tuple[list[Turn], Asker]:
    """The thread's earlier turns and who is asking (with the channels they may see)."""
    history: list[Turn] = []
    if job.history_before_ts:
        history = state.thread_turns(
            client,
            channel_id=job.channel_id,
            thread_ts=job.thread_ts,
            before_ts=job.history_before_ts,
            bot_user_id=job.bot_user_id,
        )
        if job.drop_last_user_turn and history and history[-1].role == "user":
            history = history[:-1]
    asker = state.asker(
        client,
        user_id=job.user_id,
        channel_id=job.channel_id,
        team_id=job.team_id,
        thread_ts=job.thread_ts,
        channel_type=job.channel_type,
    )
    if job.context_channel and asker.is_dm and job.user_id:
        asker = scoped_to(state, client, asker, job.context_channel)
    if job.source_prefixes:
        asker = replace(asker, source_prefixes=job.source_prefixes)
    return history, asker


def scoped_to(state: BotState, client: WebClient, asker: Asker, channel_id: str) -> Asker:
    """The DM asker with the viewed channel's documents too, when Slack says (again, now) they are a member."""
    from bot.listeners.agent import is_member

    assert asker.user_id is not None
    user_id = asker.user_id
    member = state.cache.get_or_load(f"member:{channel_id}:{user_id}", lambda: is_member(client, channel_id, user_id))
    if not member:
        log.info(kv("context_channel_refused", user=user_id, channel=channel_id))
        return asker
    others = [c for c in asker.member_channels if c != channel_id]
    return replace(asker, member_channels=[channel_id, *others])
