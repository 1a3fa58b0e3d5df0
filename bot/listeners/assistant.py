"""The assistant pane of apps made with `assistant_view` (Bolt's Assistant): suggested prompts, a status, a title,
streamed answers."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, Assistant, BoltContext, SetStatus, SetSuggestedPrompts, SetTitle
from slack_sdk import WebClient

from bot import dedupe
from bot.jobs_answer import AnswerJob, submit_job
from bot.listeners.agent import LOADING_MESSAGES, PROMPTS_TITLE, STATUS, SUGGESTED_PROMPTS, load_context
from bot.listeners.events import first_claim, is_person_asking
from bot.metrics import EVENTS
from bot.state import bot_state, strip_mention

log = logging.getLogger(__name__)


def register(app: App) -> None:
    assistant = Assistant()
    assistant.thread_started(on_thread_started)
    assistant.user_message(on_user_message)
    app.assistant(assistant)


def on_thread_started(set_suggested_prompts: SetSuggestedPrompts) -> None:
    EVENTS.labels("assistant_thread_started").inc()
    set_suggested_prompts(prompts=SUGGESTED_PROMPTS, title=PROMPTS_TITLE)


def on_user_message(
    body: dict[str, Any],
    payload: dict[str, Any],
    client: WebClient,
    context: BoltContext,
    set_status: SetStatus,
    set_title: SetTitle,
) -> None:
    """A question in the assistant pane: titled after the thread's first question, answered in the thread."""
    EVENTS.labels("assistant_message").inc()
    if not is_person_asking(payload, context):
        return  # Slackbot's notices in the DM, bot posts: never answered
    state = bot_state(context)
    channel_id, ts, thread_ts = payload["channel"], payload["ts"], payload["thread_ts"]
    if not first_claim(state, body, channel_id, ts, client=client, thread_ts=thread_ts):
        return
    question = strip_mention(payload.get("text") or "", context.bot_user_id)
    if not question:
        return
    # The thread is titled after its first question only.
    if dedupe.claim(state.settings, f"title:{channel_id}:{thread_ts}", kind="title"):
        set_title(question[:60])
    set_status(STATUS, loading_messages=LOADING_MESSAGES)
    job = AnswerJob(
        question=question,
        channel_id=channel_id,
        thread_ts=thread_ts,
        user_id=payload.get("user"),
        team_id=context.team_id,
        bot_user_id=context.bot_user_id,
        channel_type="im",
        history_before_ts=ts,
        context_channel=load_context(state.settings, context.team_id, payload.get("user")),
    )
    submit_job(state, client, job)
