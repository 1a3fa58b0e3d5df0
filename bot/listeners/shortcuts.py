"""Message shortcuts: "Save to Lore" (the thread into the knowledge base) and "Ask Lore about this"."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot.escalation import MARK_ANSWER, mark_answer
from bot.jobs_answer import AnswerJob, submit_job
from bot.metrics import EVENTS, record_error
from bot.state import bot_state, strip_mention
from lore.logs import kv

log = logging.getLogger(__name__)

SAVE = "save_to_lore"
ASK = "ask_lore"


def register(app: App) -> None:
    app.message_shortcut(SAVE)(on_save)
    app.message_shortcut(ASK)(on_ask)
    app.message_shortcut(MARK_ANSWER)(on_mark_answer)


def on_mark_answer(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
    """ "Mark as answer": a person's reply in an escalation thread becomes the answer (a correction)."""
    ack()
    EVENTS.labels("shortcut").inc()
    marked = mark_answer(
        bot_state(context),
        client,
        channel_id=body["channel"]["id"],
        reply=body.get("message") or {},
        marked_by=body["user"]["id"],
    )
    text = (
        "Thanks — Lore will remember that answer."
        if marked
        else "Only a person's reply in an “Ask a human” thread can be marked as the answer."
    )
    respond(response_type="ephemeral", text=text)


def on_save(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
    """ "Save to Lore": the message's thread into the knowledge base, visible in this channel."""
    ack()
    EVENTS.labels("shortcut").inc()
    channel_id = body["channel"]["id"]
    message = body.get("message") or {}
    thread_ts = str(message.get("thread_ts") or message.get("ts") or body["message_ts"])
    try:
        bot_state(context).workers.ingest_thread(channel_id=channel_id, thread_ts=thread_ts, acl=[channel_id])
    except Exception:
        record_error("save")
        log.exception(kv("save_failed", channel=channel_id, thread_ts=thread_ts))
        respond(response_type="ephemeral", text="Sorry — I couldn't save that right now. Please try again.")
        return
    respond(
        response_type="ephemeral",
        text="Saving this thread to Lore: it will be answerable in this channel in a moment.",
    )


def on_ask(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext, respond: Respond) -> None:
    """ "Ask Lore about this": the message's text as a question, answered in its thread."""
    ack()
    EVENTS.labels("shortcut").inc()
    channel_id = body["channel"]["id"]
    message = body.get("message") or {}
    question = strip_mention(message.get("text") or "", context.bot_user_id)
    if not question:
        respond(response_type="ephemeral", text="That message has no text to ask about.")
        return
    ts = str(message.get("ts") or body.get("message_ts"))
    thread_ts = str(message.get("thread_ts") or ts)
    job = AnswerJob(
        question=question,
        channel_id=channel_id,
        thread_ts=thread_ts,
        user_id=body["user"]["id"],
        team_id=(body.get("team") or {}).get("id"),
        bot_user_id=context.bot_user_id,
        history_before_ts=ts if message.get("thread_ts") else None,
    )
    submit_job(bot_state(context), client, job)
