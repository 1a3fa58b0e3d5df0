"""Slash commands: `/ask QUESTION` (answered in the channel) and `/lore search|add|stats|help`."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import queries
from bot.channel_modes import CONFIG_VIEW, config_view, parse_submission, read_config, save_config
from bot.jobs_answer import AnswerJob, submit_job
from bot.metrics import EVENTS, record_error
from bot.render import answer_blocks, notification_text
from bot.state import BotState, bot_state
from lore.logs import kv
from lore.types import Asker

log = logging.getLogger(__name__)

USAGE = (
    "*Lore commands*\n"
    "• `/ask QUESTION` — answer a question here, for everyone to see\n"
    "• `/lore search QUERY` — the passages that match, only for you\n"
    "• `/lore add URL` — add a web page to the knowledge base (visible in this channel)\n"
    "• `/lore stats` — what the knowledge base holds and how answers are rated\n"
    "• `/lore config` — where Lore answers in this channel, its sources, who is asked when it cannot help (admins)\n"
    "• `/lore help` — this message"
)
# Slack escapes links in command text as <https://…> or <https://…|label>.
_LINK = re.compile(r"^<?(https?://[^|>\s]+)(?:\|[^>]*)?>?$")


def register(app: App) -> None:
    app.command("/ask")(on_ask)
    app.command("/lore")(on_lore)
    app.view(CONFIG_VIEW)(on_config_submitted)


def on_ask(ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
    """`/ask QUESTION`: the question posted in the channel, answered in its thread."""
    EVENTS.labels("command").inc()
    question = (command.get("text") or "").strip()
    if not question:
        ack(text="Usage: `/ask QUESTION`")
        return
    ack()
    state = bot_state(context)
    channel_id, user_id = command["channel_id"], command["user_id"]
    team_id = command.get("team_id")
    try:
        parent = client.chat_postMessage(channel=channel_id, text=f"<@{user_id}> asked: {question}")
    except SlackApiError as exc:
        # Lore is not a member of that channel: answer through the command's response URL instead.
        log.info(kv("ask_fallback_respond", channel=channel_id, error=exc.response.get("error")))
        answer_by_response_url(
            state, question, respond, user_id=user_id, channel_id=channel_id, team_id=team_id, client=client
        )
        return
    job = AnswerJob(
        question=question,
        channel_id=channel_id,
        thread_ts=str(parent["ts"]),
        user_id=user_id,
        team_id=team_id,
        bot_user_id=context.bot_user_id,
    )
    submit_job(state, client, job)


def on_lore(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient, context: BoltContext) -> None:
    """`/lore search|add|stats|config|help`, answered only to the person who typed it."""
    EVENTS.labels("command").inc()
    state = bot_state(context)
    words = (command.get("text") or "").strip().split(maxsplit=1)
    sub = words[0].lower() if words else "help"
    rest = words[1].strip() if len(words) > 1 else ""
    if sub == "config":
        open_config(ack, command, client, state)
    elif sub == "search" and rest:
        ack()
        respond(text=search_text(state, rest, channel_id=command["channel_id"], user_id=command["user_id"]))
    elif sub == "add" and rest:
        match = _LINK.match(rest)
        if match is None:
            ack(text="`/lore add` takes one http(s) URL, e.g. `/lore add https://example.com/handbook`")
            return
        ack()
        respond(text=queue_url(state, match.group(1), channel_id=command["channel_id"]))
    elif sub == "stats":
        ack()
        respond(text=stats_text(state))
    else:
        ack(text=USAGE if sub == "help" else f"Unknown command `{sub}`.\n\n{USAGE}")


NOT_ADMIN = "Only Lore's admins (LORE_ADMIN_USERS) can change how Lore works in a channel."


def open_config(ack: Ack, command: dict[str, Any], client: WebClient, state: BotState) -> None:
    """`/lore config`: the channel's settings in a modal, for admins; anyone else is told who may."""
    if command["user_id"] not in state.settings.csv("admin_users"):
        ack(text=NOT_ADMIN)
        log.info(kv("config_refused", user=command["user_id"], channel=command["channel_id"]))
        return
    ack()
    current = read_config(state.settings, command["channel_id"])
    client.views_open(trigger_id=command["trigger_id"], view=config_view(command["channel_id"], current))


def on_config_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """Save the modal (checked again: the submission is a request of its own)."""
    state = bot_state(context)
    user_id = body["user"]["id"]
    if user_id not in state.settings.csv("admin_users"):
        ack(response_action="errors", errors={"mode": NOT_ADMIN})
        return
    config, errors = parse_submission(view.get("state", {}).get("values", {}))
    if config is None:
        ack(response_action="errors", errors=errors)
        return
    channel_id = str(view.get("private_metadata") or "")
    save_config(state.settings, channel_id, config)
    state.cache.forget(f"config:{channel_id}")
    ack()
    log.info(kv("channel_configured", channel=channel_id, mode=config.mode, by=user_id))


def answer_by_response_url(
    state: BotState,
    question: str,
    respond: Respond,
    *,
    user_id: str,
    channel_id: str,
    team_id: str | None,
    client: WebClient,
) -> None:
    asker = state.asker(client, user_id=user_id, channel_id=channel_id, team_id=team_id, thread_ts=None)
    try:
        answer = state.answerer(state.settings, question, asker=asker, history=[])
    except Exception:
        record_error("answer")
        log.exception(kv("answer_failed", channel=channel_id, surface="ask"))
        respond(text="Sorry — I couldn't answer that just now. Please try again in a moment.")
        return
    text = f"<@{user_id}> asked: {question}\n\n{notification_text(answer.text)}"
    respond(response_type="in_channel", text=text[:3000], blocks=answer_blocks(answer))


def search_text(state: BotState, query: str, *, channel_id: str, user_id: str) -> str:
    from lore.search import hybrid_search

    try:
        hits = hybrid_search(
            state.settings, query, asker=Asker(user_id=user_id, channel_id=channel_id, surface="slack"), k=5
        )
    except Exception:
        record_error("search")
        log.exception(kv("search_failed", channel=channel_id))
        return "Sorry — the search failed. Please try again in a moment."
    if not hits:
        return f"Nothing found for “{query}”."
    lines = [f"*Results for “{query}”*"]
    for n, hit in enumerate(hits, 1):
        link = f"<{hit.uri}|{hit.title or hit.uri}>" if hit.uri.startswith("http") else (hit.title or hit.uri)
        snippet = " ".join(hit.text.split())[:200]
        lines.append(f"{n}. {link} ({hit.score:.2f})\n>{snippet}")
    return "\n".join(lines)


def queue_url(state: BotState, url: str, *, channel_id: str) -> str:
    try:
        job_id = state.workers.queue_ingest([url], acl=[channel_id])
    except Exception:
        record_error("ingest")
        log.exception(kv("queue_ingest_failed", channel=channel_id))
        return "Sorry — I couldn't queue that page. Please try again in a moment."
    return f"Queued {url} for the knowledge base (job #{job_id}); it will be visible in this channel."


def stats_text(state: BotState) -> str:
    figures = queries.home_figures(state.settings, with_downvoted=False)
    last = figures["last_sync"].strftime("%Y-%m-%d %H:%M UTC") if figures["last_sync"] else "never"
    return (
        f"*Knowledge base*: {figures['documents']} documents, {figures['chunks']} chunks, "
        f"{figures['sources']} sources, last sync {last}\n"
        f"*This week*: {figures['answers_week']} answers, {figures['up_week']} 👍, {figures['down_week']} 👎"
    )
