"""Events: mentions, DMs and thread follow-ups (answered once), reactions, deletions, live indexing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot import dedupe, queries
from bot.answering import APOLOGY
from bot.channel_modes import ChannelConfig
from bot.escalation import MARK_REACTIONS, mark_answer, reply_message
from bot.jobs_answer import AnswerJob, submit_job
from bot.listeners.agent import load_context, show_status
from bot.metrics import DUPLICATES, EVENTS, record_error
from bot.regenerate import regenerate
from bot.render import critique_offer_blocks, source_pick_blocks
from bot.state import BotState, bot_state, strip_mention
from lore import feedback
from lore.logs import kv

log = logging.getLogger(__name__)

# A file shared without a question asks what it says.
FILES_ONLY_QUESTION = "What do the shared files say?"
# Message subtypes that are a person writing (others: joins, edits, deletions, bot posts...).
_HUMAN_SUBTYPES = (None, "file_share", "thread_broadcast")


# Slack's own system user: "You have been removed from #x by @y" and other notices arrive in the bot's DM as
# plain messages from it, with no subtype and no bot_id.
SLACKBOT_USER_ID = "USLACKBOT"


def is_from_bot(event: dict[str, Any], context: BoltContext) -> bool:
    return bool(
        event.get("bot_id")
        or event.get("bot_profile")
        or event.get("subtype") == "bot_message"
        or (context.bot_user_id and event.get("user") == context.bot_user_id)
    )


def is_person_asking(event: dict[str, Any], context: BoltContext) -> bool:
    """Did a person write this message (not Slackbot, a bot, an app or Slack itself: joins, edits, deletions,
    notices)? Only such messages may be answered."""
    user = event.get("user")
    if not isinstance(user, str) or not user or user == SLACKBOT_USER_ID:
        return False
    if event.get("subtype") not in _HUMAN_SUBTYPES or event.get("hidden"):
        return False
    return not is_from_bot(event, context)


def channel_config(state: BotState, channel_id: str) -> ChannelConfig:
    """The channel's /lore config; the default (answer when mentioned) when it cannot be read."""
    try:
        return state.channel_config(channel_id)
    except Exception:
        record_error("channel_config")
        log.exception(kv("channel_config_unavailable", channel=channel_id))
        return ChannelConfig()


def answer_message(
    state: BotState,
    client: WebClient,
    context: BoltContext,
    event: dict[str, Any],
    *,
    thread_ts: str,
    auto: bool = False,
) -> None:
    """Answer one person's message in its thread, with the thread's earlier turns as history."""
    channel_id = event["channel"]
    question = strip_mention(event.get("text") or "", context.bot_user_id)
    files = tuple(dict(f) for f in event.get("files") or [])
    if not question and files:
        question = FILES_ONLY_QUESTION
    if not question:
        client.chat_postMessage(channel=channel_id, thread_ts=thread_ts, text="Ask me a question about your docs.")
        return
    is_dm = event.get("channel_type") == "im"
    if is_dm:
        show_status(client, channel_id=channel_id, thread_ts=thread_ts)
    team_id = context.team_id or event.get("team")
    job = AnswerJob(
        question=question,
        channel_id=channel_id,
        thread_ts=thread_ts,
        user_id=event.get("user"),
        team_id=team_id,
        bot_user_id=context.bot_user_id,
        channel_type=event.get("channel_type"),
        context_channel=load_context(state.settings, team_id, event.get("user")) if is_dm else None,
        files=files,
        auto=auto,
        source_prefixes=() if is_dm else channel_config(state, channel_id).source_prefixes,
        history_before_ts=event["ts"] if event.get("thread_ts") else None,
        # question_ts lets the feedback part forget this answer when the question is deleted.
        generation={"question_ts": event["ts"]},
    )
    submit_job(state, client, job)


def first_claim(
    state: BotState,
    body: dict[str, Any],
    channel_id: str,
    ts: str,
    *,
    client: WebClient | None = None,
    thread_ts: str | None = None,
) -> bool:
    """The delivery and the message both new? (retries share an event id; message+app_mention a message)

    When the database is down nothing can be answered: with a client, the asker gets the apology in the
    thread instead of silence (retries during the outage cannot be told apart, so each may get one).
    """
    key = dedupe.message_key(channel_id, ts)
    try:
        claimed = dedupe.claim(state.settings, body.get("event_id") or "", key, kind="question")
    except Exception:
        ref = uuid.uuid4().hex[:8]
        record_error("claim")
        log.exception(kv("claim_failed", ref=ref, channel=channel_id, ts=ts))
        if client is not None:
            try:
                client.chat_postMessage(channel=channel_id, thread_ts=thread_ts or ts, text=APOLOGY.format(ref=ref))
            except Exception:
                record_error("apology")
                log.exception(kv("apology_failed", ref=ref, channel=channel_id))
        return False
    if claimed:
        return True
    DUPLICATES.inc()
    return False


def register(app: App) -> None:
    app.event("app_mention")(on_mention)
    app.event("message")(on_message)
    app.event("reaction_added")(on_reaction)
    app.event("reaction_removed")(on_reaction)


def on_mention(body: dict[str, Any], event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    EVENTS.labels("app_mention").inc()
    if not is_person_asking(event, context):
        return
    state = bot_state(context)
    thread_ts = event.get("thread_ts") or event["ts"]
    if not first_claim(state, body, event["channel"], event["ts"], client=client, thread_ts=thread_ts):
        return
    if channel_config(state, event["channel"]).mode == "off":
        return  # an admin turned Lore off here (/lore config)
    answer_message(state, client, context, event, thread_ts=thread_ts)


def on_message(body: dict[str, Any], event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    EVENTS.labels("message").inc()
    state = bot_state(context)
    subtype = event.get("subtype")
    channel_id = event.get("channel") or ""
    if subtype == "message_deleted":
        forget_deleted(state, event, live=live_indexed(state, channel_id))
        return
    if subtype == "message_changed":
        edited = event.get("message") or {}
        if live_indexed(state, channel_id) and not edited.get("bot_id"):
            state.workers.ingest_message(channel_id, edited, deleted=False)
        return
    if subtype not in _HUMAN_SUBTYPES or is_from_bot(event, context):
        return
    if live_indexed(state, channel_id):
        state.workers.ingest_message(channel_id, event, deleted=False)
    if not is_person_asking(event, context):
        return  # Slackbot's notices and the like: indexed where live, never answered
    ts = event["ts"]
    thread_ts = event.get("thread_ts")
    if event.get("channel_type") == "im":
        if first_claim(state, body, channel_id, ts, client=client, thread_ts=thread_ts or ts):
            answer_message(state, client, context, event, thread_ts=thread_ts or ts)
        return
    mentioned = bool(context.bot_user_id) and f"<@{context.bot_user_id}>" in (event.get("text") or "")
    config = channel_config(state, channel_id)
    if config.mode == "off":
        return
    if not thread_ts or thread_ts == ts:
        # A new post in a channel: a mention (app_mention) asks the bot; in auto mode a question does too.
        if config.mode == "auto" and not mentioned and first_claim(state, body, channel_id, ts):
            answer_message(state, client, context, event, thread_ts=ts, auto=True)
        return
    if not mentioned and not dedupe.bot_in_thread(state.settings, channel_id, thread_ts):
        return
    if first_claim(state, body, channel_id, ts, client=client, thread_ts=thread_ts):
        answer_message(state, client, context, event, thread_ts=thread_ts)


def on_reaction(body: dict[str, Any], event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """👍/👎 on an answer is that user's vote (added or removed); the regenerate reaction asks again."""
    added = event.get("type") == "reaction_added"
    EVENTS.labels(event.get("type") or "reaction").inc()
    item = event.get("item") or {}
    user_id = event.get("user")
    if item.get("type") != "message" or not user_id or user_id == context.bot_user_id:
        return
    if added and event.get("reaction") in MARK_REACTIONS:
        # ✅ on a person's reply in an "Ask a human" thread marks it as the answer (read from Slack, off-thread).
        state = bot_state(context)
        state.in_background(
            resolve_mark, state, client, str(item.get("channel") or ""), str(item.get("ts") or ""), user_id
        )
        return
    if event.get("item_user") and context.bot_user_id and event["item_user"] != context.bot_user_id:
        return  # a reaction on someone else's message: not feedback on Lore
    state = bot_state(context)
    reaction = str(event.get("reaction") or "").split("::", 1)[0]  # "+1::skin-tone-2" is a +1
    channel_id, message_ts = str(item.get("channel") or ""), str(item.get("ts") or "")
    value = feedback.reaction_value(state.settings, reaction)
    if value is not None:
        state.workers.vote(
            "reaction",
            channel_id=channel_id,
            message_ts=message_ts,
            user_id=user_id,
            reaction=reaction,
            added=added,
            # Slack's own event time orders a user's reactions: handled on parallel threads (and redelivered
            # by Slack or Celery), a later "remove" or "switch" must still win over an earlier "add".
            event_ts=event.get("event_ts"),
        )
        if added and (value < 0 or state.settings.ask_which_source):
            # A Slack call that may take a while: off the listener threads, which the next votes need.
            state.in_background(
                offer_critique if value < 0 else offer_source_pick,
                state,
                client,
                channel_id=channel_id,
                message_ts=message_ts,
                user_id=user_id,
            )
    elif added and feedback.is_regenerate_reaction(state.settings, reaction) and first_delivery(state, body):
        original = queries.answer_by_message(state.settings, channel_id, message_ts)
        if original is not None:
            regenerate(state, client, original=original, user_id=user_id, bot_user_id=context.bot_user_id)


def resolve_mark(state: BotState, client: WebClient, channel_id: str, ts: str, user_id: str) -> None:
    reply = reply_message(client, channel_id, ts)
    if reply is not None:
        mark_answer(state, client, channel_id=channel_id, reply=reply, marked_by=user_id)


def first_delivery(state: BotState, body: dict[str, Any]) -> bool:
    """For what must happen once (a regeneration): Slack retries share the event id. Votes need no claim:
    recording the same event again changes nothing."""
    if body.get("event_id") and not dedupe.claim(state.settings, body["event_id"], kind="reaction"):
        DUPLICATES.inc()
        return False
    return True


def live_indexed(state: BotState, channel_id: str) -> bool:
    try:
        channels = state.cache.get_or_load("live_index", lambda: queries.live_index_channels(state.settings))
    except Exception:  # the database is down: questions still get their apology (first_claim)
        record_error("live_index")
        log.warning(kv("live_index_channels_unavailable", channel=channel_id))
        return False
    return channel_id in channels


def forget_deleted(state: BotState, event: dict[str, Any], *, live: bool) -> None:
    """A deleted question takes its answers' feedback with it; a live-indexed channel drops the message too."""
    channel_id = event.get("channel") or ""
    previous = event.get("previous_message") or {}
    deleted_ts = event.get("deleted_ts") or previous.get("ts")
    if not deleted_ts:
        return
    try:
        removed = feedback.forget_message(state.settings, channel_id=channel_id, message_ts=deleted_ts)
        log.info(kv("message_forgotten", channel=channel_id, ts=deleted_ts, removed=removed))
    except Exception:
        record_error("forget")
        log.exception(kv("forget_failed", channel=channel_id, ts=deleted_ts))
    if live and not previous.get("bot_id"):
        state.workers.ingest_message(channel_id, {**previous, "ts": deleted_ts}, deleted=True)


def offer_source_pick(state: BotState, client: WebClient, *, channel_id: str, message_ts: str, user_id: str) -> None:
    """After a 👍 on an answer with several sources, ask once per answer and user which one answered it."""
    _offer_once(
        state,
        client,
        channel_id=channel_id,
        message_ts=message_ts,
        user_id=user_id,
        kind="source_pick",
        text="Thanks — noted. Which source answered it?",
        blocks_for=lambda answer_id: source_pick_blocks(answer_id, queries.answer_sources(state.settings, answer_id)),
    )


def offer_critique(state: BotState, client: WebClient, *, channel_id: str, message_ts: str, user_id: str) -> None:
    """Offer the "what was wrong?" dialog once per answer and user (not again on each 👎 toggle or retry)."""
    _offer_once(
        state,
        client,
        channel_id=channel_id,
        message_ts=message_ts,
        user_id=user_id,
        kind="critique_offer",
        text="Thanks — noted. Want to say what was wrong?",
        blocks_for=critique_offer_blocks,
    )


def _offer_once(
    state: BotState,
    client: WebClient,
    *,
    channel_id: str,
    message_ts: str,
    user_id: str,
    kind: str,
    text: str,
    blocks_for: Callable[[int], list[dict[str, Any]]],
) -> None:
    """An ephemeral offer after a reaction on an answer, to that user once per answer (claimed as `kind`), in the
    answer's thread; nothing when the answer is unknown or `blocks_for` has nothing to offer."""
    answer = queries.answer_by_message(state.settings, channel_id, message_ts)
    if answer is None:
        return
    blocks = blocks_for(answer.answer_id)
    if not blocks or not dedupe.claim(state.settings, f"{kind}:{answer.answer_id}:{user_id}", kind=kind):
        return
    client.chat_postEphemeral(channel=channel_id, user=user_id, thread_ts=answer.thread_ts, text=text, blocks=blocks)
