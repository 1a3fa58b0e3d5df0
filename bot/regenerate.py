"""Regenerate: a second answer to the same question with other settings, then "Which is better?"."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot.answering import answer_in_thread
from bot.queries import AnswerRef
from bot.render import comparison_blocks
from bot.state import BotState
from lore.logs import kv

log = logging.getLogger(__name__)

# More context and a hotter sampler than the first answer, so the two differ enough to compare.
REGENERATE_SETTINGS = {"temperature": 0.9, "k": 16}


def regenerate(
    state: BotState, client: WebClient, *, original: AnswerRef, user_id: str, bot_user_id: str | None
) -> None:
    if not original.channel_id or not (original.thread_ts or original.message_ts):
        log.warning(kv("regenerate_skipped", answer_id=original.answer_id, reason="answer has no Slack message"))
        return
    channel_id = original.channel_id
    thread_ts = original.thread_ts or original.message_ts
    assert thread_ts is not None
    history = []
    if original.message_ts:
        history = state.thread_turns(
            client, channel_id=channel_id, thread_ts=thread_ts, before_ts=original.message_ts, bot_user_id=bot_user_id
        )
        # The last user turn before the first answer is the question itself, which is passed on its own.
        if history and history[-1].role == "user":
            history = history[:-1]
    asker = state.asker(client, user_id=user_id, channel_id=channel_id, team_id=original.team_id, thread_ts=thread_ts)
    second = answer_in_thread(
        state,
        client,
        question=original.question,
        asker=asker,
        channel_id=channel_id,
        thread_ts=thread_ts,
        history=history,
        parent_id=original.answer_id,
        generation=dict(REGENERATE_SETTINGS),
    )
    if second is None or second.answer_id is None:
        return
    client.chat_postMessage(
        channel=channel_id,
        thread_ts=thread_ts,
        text="Which is better?",
        blocks=comparison_blocks(original.answer_id, second.answer_id),
    )
