"""Buttons and the critique dialog: votes, "Which source answered it?", "What was wrong?", Regenerate, and "Which is
better?"."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot import queries
from bot.escalation import ask_human
from bot.metrics import EVENTS
from bot.regenerate import regenerate
from bot.render import (
    ASK_HUMAN,
    CRITIQUE_OPEN,
    CRITIQUE_VIEW,
    FEEDBACK,
    PREFER,
    REGENERATE,
    SOURCE_PICK,
    VOTE_DOWN,
    VOTE_UP,
    critique_offer_blocks,
    feedback_value,
    source_pick_blocks,
)
from bot.render import critique_view as build_critique_view
from bot.state import BotState, bot_state
from lore.logs import kv

log = logging.getLogger(__name__)

THANKS = "Thanks — noted"


def _answer_id(body: dict[str, Any]) -> int | None:
    try:
        return int(body["actions"][0]["value"])
    except (KeyError, IndexError, TypeError, ValueError):
        log.warning(kv("bad_action_value", action=(body.get("actions") or [{}])[0].get("action_id")))
        return None


def register(app: App) -> None:
    app.action(FEEDBACK)(on_feedback)
    app.action(ASK_HUMAN)(on_ask_human)
    app.action(VOTE_UP)(on_vote_up)
    app.action(VOTE_DOWN)(on_vote_down)
    app.action(CRITIQUE_OPEN)(on_critique_open)
    app.view(CRITIQUE_VIEW)(on_critique_submitted)
    app.action(REGENERATE)(on_regenerate)
    app.action(re.compile(f"^{PREFER}"))(on_prefer)
    app.action(re.compile(f"^{SOURCE_PICK}_"))(on_source_pick)


def on_vote_up(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
    _vote(ack, body, respond, context, 1)


def on_vote_down(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
    _vote(ack, body, respond, context, -1)


def _vote(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext, value: int) -> None:
    ack()
    EVENTS.labels("action").inc()
    answer_id = _answer_id(body)
    if answer_id is None:
        return
    user_id = body["user"]["id"]
    state = bot_state(context)
    state.workers.vote("vote", answer_id=answer_id, user_id=user_id, value=value, via="button")
    _thank(state, respond, answer_id, value)


def _thank(state: BotState, respond: Respond, answer_id: int, vote: int) -> None:
    """The ephemeral reply to a vote: after a 👎 the offer to say what was wrong, after a 👍 on an answer with
    several sources the question which one answered it."""
    if vote < 0:
        respond(response_type="ephemeral", replace_original=False, text=THANKS, blocks=critique_offer_blocks(answer_id))
        return
    asks = vote > 0 and state.settings.ask_which_source
    blocks = source_pick_blocks(answer_id, queries.answer_sources(state.settings, answer_id)) if asks else []
    if blocks:
        respond(response_type="ephemeral", replace_original=False, text=THANKS, blocks=blocks)
    else:
        respond(response_type="ephemeral", replace_original=False, text=THANKS if vote else CLEARED)


GONE = "That answer was deleted, so there is nothing to vote on."
CLEARED = "Your vote on this answer is withdrawn."


def on_feedback(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
    """Slack's feedback buttons: a vote exactly as a reaction gives one (one per user and answer, the latest
    wins); pressing the same button again withdraws it."""
    ack()
    EVENTS.labels("action").inc()
    action = (body.get("actions") or [{}])[0]
    parsed = feedback_value(str(action.get("value") or ""))
    if parsed is None:
        log.warning(kv("bad_feedback_value", value=action.get("value")))
        return
    value, answer_id = parsed
    user_id = body["user"]["id"]
    state = bot_state(context)
    current = queries.current_vote(state.settings, answer_id, user_id)
    if current is None:  # no answers row: the answer (or its question) was deleted
        respond(response_type="ephemeral", replace_original=False, text=GONE)
        return
    vote = 0 if current == value else value
    state.workers.vote("vote", answer_id=answer_id, user_id=user_id, value=vote, via="button", event_ts=None)
    _thank(state, respond, answer_id, vote)


def on_ask_human(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
    ack()
    EVENTS.labels("action").inc()
    answer_id = _answer_id(body)
    if answer_id is None:
        return
    told = ask_human(bot_state(context), client, answer_id=answer_id, user_id=body["user"]["id"])
    respond(response_type="ephemeral", replace_original=False, text=told)


def on_critique_open(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
    ack()
    answer_id = _answer_id(body)
    if answer_id is not None:
        client.views_open(trigger_id=body["trigger_id"], view=build_critique_view(answer_id))


def on_critique_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    values = view.get("state", {}).get("values", {})
    critique = ((values.get("critique") or {}).get("text") or {}).get("value") or ""
    correction = ((values.get("correction") or {}).get("text") or {}).get("value") or None
    if not critique.strip():
        ack(response_action="errors", errors={"critique": "Please say what was wrong."})
        return
    ack()
    EVENTS.labels("view").inc()
    try:
        answer_id = int(view.get("private_metadata") or "")
    except ValueError:
        log.warning(kv("bad_critique_view", metadata=view.get("private_metadata")))
        return
    bot_state(context).workers.record_critique(
        answer_id=answer_id,
        user_id=body["user"]["id"],
        critique=critique.strip(),
        correction=correction.strip() if correction else None,
    )


def on_regenerate(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    ack()
    EVENTS.labels("action").inc()
    answer_id = _answer_id(body)
    if answer_id is None:
        return
    state = bot_state(context)
    original = queries.answer_by_id(state.settings, answer_id)
    if original is None:
        log.warning(kv("regenerate_unknown_answer", answer_id=answer_id))
        return
    regenerate(state, client, original=original, user_id=body["user"]["id"], bot_user_id=context.bot_user_id)


def on_prefer(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
    ack()
    EVENTS.labels("action").inc()
    try:
        choice = json.loads(body["actions"][0]["value"])
        chosen, rejected = int(choice["chosen"]), int(choice["rejected"])
    except (KeyError, IndexError, TypeError, ValueError):
        log.warning(kv("bad_prefer_value"))
        return
    bot_state(context).workers.record_comparison(chosen_id=chosen, rejected_id=rejected, user_id=body["user"]["id"])
    respond(response_type="ephemeral", replace_original=False, text=THANKS)


PICKED = "Thanks — noted: {title} answered it."
NOT_RECORDED = "Sorry — your choice could not be recorded. Please try again in a moment."


def on_source_pick(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
    """A press of a "Which source answered it?" button: the user's 👍 on the answer now credits the page they chose."""
    ack()
    EVENTS.labels("action").inc()
    action = (body.get("actions") or [{}])[0]
    try:
        choice = json.loads(action["value"])
        answer_id, uri = int(choice["answer_id"]), str(choice["uri"])
    except (KeyError, TypeError, ValueError):
        log.warning(kv("bad_source_pick_value", action=action.get("action_id")))
        return
    workers = bot_state(context).workers
    if workers.record_source_pick(answer_id=answer_id, user_id=body["user"]["id"], source_uri=uri):
        respond(replace_original=True, text=PICKED.format(title=(action.get("text") or {}).get("text") or uri))
    else:
        respond(response_type="ephemeral", replace_original=False, text=NOT_RECORDED)
