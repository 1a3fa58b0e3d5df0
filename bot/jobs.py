"""Hand-offs from the bot to Celery: ingest tasks by name, and feedback through the feedback part's submit."""

from __future__ import annotations

import logging
from typing import Any

from bot.metrics import record_error
from bot.state import BotState
from lore.config import Settings
from lore.logs import kv

log = logging.getLogger(__name__)

INGEST_THREAD = "workers.tasks.ingest_slack_thread"
INGEST_MESSAGE = "workers.tasks.ingest_slack_message"
RECORD_COMPARISON = "workers.tasks.record_comparison"
RECORD_CRITIQUE = "workers.tasks.record_critique"


def send_ingest(task_name: str, **kwargs: Any) -> str:
    """Queue an ingest task by name (the worker owns the code); returns the Celery task id."""
    from workers.app import app

    result = app.send_task(task_name, kwargs=kwargs, retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2})
    log.info(kv("task_sent", task=task_name, id=result.id))
    return str(result.id)


def submit(settings: Settings, task_name: str, **kwargs: Any) -> bool:
    """Record feedback (never lost: the feedback part writes to PostgreSQL when the broker is down)."""
    from workers.feedback_tasks import submit_feedback

    try:
        submit_feedback(settings, task_name, **kwargs)
    except Exception:
        record_error("feedback")
        log.exception(kv("feedback_failed", task=task_name))
        return False
    return True


def submit_vote(state: BotState, kind: str, **fields: Any) -> bool:
    """Queue a vote reaction (kind "reaction") or button vote (kind "vote") on the bot's vote batcher."""
    try:
        state.vote_batcher().add(kind, **fields)
    except Exception:
        record_error("feedback")
        log.exception(kv("feedback_failed", kind=kind))
        return False
    return True
