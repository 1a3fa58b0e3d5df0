"""Regenerate: a second answer to the same question with other settings, then "Which is better?"."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot.jobs_answer import AnswerJob, submit_job
from bot.queries import AnswerRef
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
    thread_ts = original.thread_ts or original.message_ts
    assert thread_ts is not None
    job = AnswerJob(
        question=original.question,
        channel_id=original.channel_id,
        thread_ts=thread_ts,
        user_id=user_id,
        team_id=original.team_id,
        bot_user_id=bot_user_id,
        history_before_ts=original.message_ts,
        drop_last_user_turn=True,
        parent_id=original.answer_id,
        generation=dict(REGENERATE_SETTINGS),
        compare_with=original.answer_id,
    )
    submit_job(state, client, job)
