"""A human when Lore cannot help: "Ask a human" (on an "I don't know" answer, or after a 👎) posts the question,
Lore's answer and a link to the thread to the channel's escalation target (/lore config, else
LORE_ESCALATION_CHANNEL) and tells the asker who was asked; a reply there marked with ✅ or the "Mark as answer"
shortcut becomes a correction (feedback memory, `lore feedback export --format eval`) and goes back to the thread."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import dedupe, queries
from bot.state import BotState
from lore.db import raw_connection
from lore.logs import kv

log = logging.getLogger(__name__)

MARK_ANSWER = "lore_mark_answer"  # the message shortcut
MARK_REACTIONS = ("white_check_mark", "heavy_check_mark", "ballot_box_with_check")
NO_TARGET = "No one to ask is set up yet: an admin can name a channel with `/lore config` or LORE_ESCALATION_CHANNEL."
_KEY = "escalation:{channel}:{ts}:"


def target_for(state: BotState, channel_id: str | None) -> tuple[str | None, str | None]:
    """(channel to post in, user group to mention) for an answer given in `channel_id`."""
    configured = state.channel_config(channel_id).escalation_target if channel_id else None
    default = state.settings.escalation_channel
    if configured and configured.startswith("S"):  # a user group: mentioned in the default channel
        return default, configured
    return (configured or default), None


def ask_human(state: BotState, client: WebClient, *, answer_id: int, user_id: str) -> str:
    """Post the escalation; returns what to tell the person who asked for it."""
    answer = queries.answer_by_id(state.settings, answer_id)
    if answer is None or not answer.channel_id:
        return "That answer was deleted, so there is nothing to pass on."
    channel, group = target_for(state, answer.channel_id)
    if channel is None:
        return NO_TARGET
    if not dedupe.claim(state.settings, f"escalated:{answer_id}", kind="escalated"):
        return "Someone already asked a human about this answer; their reply will come to the thread."
    text_of_answer = _answer_text(state, answer_id)
    link = ""
    if answer.message_ts:
        try:
            link = str(client.chat_getPermalink(channel=answer.channel_id, message_ts=answer.message_ts)["permalink"])
        except SlackApiError as exc:
            log.info(kv("permalink_failed", answer_id=answer_id, error=exc.response.get("error")))
    who = f"<!subteam^{group}> " if group else ""
    text = (
        f"{who}<@{user_id}> asked in <#{answer.channel_id}>: *{answer.question}*\n"
        f">{text_of_answer[:1500]}\n"
        f"Lore could not help. {('Thread: ' + link + chr(10)) if link else ''}"
        "Reply in this thread; mark the reply that answers it with ✅ or the “Mark as answer” shortcut."
    )
    posted = client.chat_postMessage(channel=channel, text=text, unfurl_links=False)
    dedupe.mark(state.settings, _KEY.format(channel=channel, ts=posted["ts"]) + str(answer_id), kind="escalation")
    asked = f"<!subteam^{group}>" if group else f"<#{channel}>"
    if answer.thread_ts:
        client.chat_postMessage(
            channel=answer.channel_id,
            thread_ts=answer.thread_ts,
            text=f"I've asked {asked} for help with this; their answer will come back here.",
        )
    log.info(kv("escalated", answer_id=answer_id, to=channel, group=group))
    return f"Asked {asked}."


def _answer_text(state: BotState, answer_id: int) -> str:
    with raw_connection(state.settings) as conn:
        row = conn.execute("SELECT answer FROM answers WHERE id = %s", (answer_id,)).fetchone()
    return " ".join(str(row[0]).split()) if row else ""


def escalated_answer(state: BotState, channel_id: str, thread_ts: str) -> int | None:
    """The answer an escalation thread is about, if it is one."""
    prefix = _KEY.format(channel=channel_id, ts=thread_ts)
    with raw_connection(state.settings) as conn:
        row = conn.execute(
            "SELECT event_id FROM slack_events WHERE kind = 'escalation' AND starts_with(event_id, %s) LIMIT 1",
            (prefix,),
        ).fetchone()
    return int(row[0][len(prefix) :]) if row else None


def mark_answer(state: BotState, client: WebClient, *, channel_id: str, reply: dict[str, Any], marked_by: str) -> bool:
    """A person's reply in an escalation thread, marked as the answer: a correction, and back to the asker."""
    thread_ts = reply.get("thread_ts")
    if not thread_ts or thread_ts == reply.get("ts") or reply.get("bot_id") or not reply.get("user"):
        return False
    answer_id = escalated_answer(state, channel_id, str(thread_ts))
    if answer_id is None:
        return False
    if not dedupe.claim(state.settings, f"escalation_answer:{channel_id}:{reply['ts']}", kind="escalation_answer"):
        return True
    correction = str(reply.get("text") or "").strip()
    state.workers.record_critique(
        answer_id=answer_id,
        user_id=str(reply["user"]),
        critique=f"Lore could not help; answered by <@{reply['user']}> (marked by <@{marked_by}>).",
        correction=correction,
    )
    answer = queries.answer_by_id(state.settings, answer_id)
    if answer is not None and answer.channel_id and answer.thread_ts:
        client.chat_postMessage(
            channel=answer.channel_id,
            thread_ts=answer.thread_ts,
            text=f"<@{reply['user']}> answered:\n{correction}"[:3000],
        )
    log.info(kv("escalation_answered", answer_id=answer_id, by=reply.get("user")))
    return True


def reply_message(client: WebClient, channel_id: str, ts: str) -> dict[str, Any] | None:
    """The message a reaction was added to (with its thread_ts), read from Slack."""
    try:
        page = client.conversations_replies(channel=channel_id, ts=ts, limit=1, inclusive=True)
    except SlackApiError as exc:
        log.info(kv("reply_unreadable", channel=channel_id, ts=ts, error=exc.response.get("error")))
        return None
    return next((m for m in page.get("messages") or [] if m.get("ts") == ts), None)
