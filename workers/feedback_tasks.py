"""Feedback tasks on the `feedback` queue: votes, reactions, comparisons and critiques the bot sends
(bot/worker_client.py), recorded in PostgreSQL; concurrent votes share one transaction (GroupCommit)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import sqlalchemy.exc

from lore import feedback
from lore.config import get_settings
from lore.db import raw_connection
from lore.logs import kv
from workers.app import app

log = logging.getLogger(__name__)

# Transient database trouble is retried with backoff; a bad request (FeedbackError) is dropped and logged.
_TRANSIENT = (psycopg.OperationalError, sqlalchemy.exc.OperationalError)
_TASK_OPTIONS: dict[str, Any] = {
    "ignore_result": True,
    "acks_late": True,
    "autoretry_for": _TRANSIENT,
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 10,
}
# Events whose order matters carry an event time: they go through the group commit, in order.
_ORDERED = frozenset({"record_reaction", "record_vote"})


def _run(name: str, call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    try:
        if name in _ORDERED:
            return _group_commit.record(name, call, kwargs)
        return call(get_settings(), **kwargs)
    except feedback.FeedbackError as exc:
        log.warning(kv("feedback_rejected", task=name, error=exc))
        return None


@dataclass
class _Pending:
    name: str
    call: Callable[..., Any]
    kwargs: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None

    def key(self) -> tuple[str, str]:
        target = self.kwargs.get("answer_id") or f"{self.kwargs.get('channel_id')}/{self.kwargs.get('message_ts')}"
        return str(target), str(self.kwargs.get("user_id"))


class GroupCommit:
    """Votes arriving on several worker threads (`-P threads -c N`) are written by one thread in a single
    transaction: one commit (one fsync) for the batch instead of one per vote. Each task still returns, and
    is acknowledged, only after its own vote is committed, so nothing acknowledged can be lost."""

    def __init__(self, max_batch: int = 256) -> None:
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None

    def record(self, name: str, call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        item = _Pending(name, call, kwargs)
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._loop, name="feedback-group-commit", daemon=True)
                self._writer.start()
        self._queue.put(item)
        item.done.wait()
        if item.error is not None:
            raise item.error
        return item.result

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[_Pending]) -> None:
        settings = get_settings()
        # A stable sort keeps each (answer, user)'s events in arrival order while making every batch take
        # its advisory locks in the same order (no deadlock between workers).
        ordered = sorted(batch, key=_Pending.key)
        try:
            with raw_connection(settings) as conn:
                for item in ordered:
                    try:
                        item.result = item.call(settings, conn=conn, **item.kwargs)
                    except feedback.FeedbackError as exc:  # raised before any write: the batch goes on
                        item.error = exc
        except Exception:
            # One event broke the transaction: record each alone, so it costs only itself.
            log.warning(kv("feedback_batch_failed", size=len(batch), fallback="one_by_one"), exc_info=True)
            for item in ordered:
                try:
                    item.result, item.error = item.call(settings, **item.kwargs), None
                except Exception as exc:
                    item.error = exc
        for item in batch:
            item.done.set()


_group_commit = GroupCommit()


@app.task(name="workers.feedback_tasks.record_reaction", **_TASK_OPTIONS)
def record_reaction(**kwargs: Any) -> bool | None:
    result: bool | None = _run("record_reaction", feedback.record_reaction, kwargs)
    return result


@app.task(name="workers.feedback_tasks.record_vote", **_TASK_OPTIONS)
def record_vote(**kwargs: Any) -> None:
    _run("record_vote", feedback.record_vote, kwargs)


@app.task(name="workers.feedback_tasks.record_comparison", **_TASK_OPTIONS)
def record_comparison(**kwargs: Any) -> None:
    _run("record_comparison", feedback.record_comparison, kwargs)


@app.task(name="workers.feedback_tasks.record_critique", **_TASK_OPTIONS)
def record_critique(**kwargs: Any) -> None:
    _run("record_critique", feedback.record_critique, kwargs)


@app.task(name="workers.feedback_tasks.record_source_pick", **_TASK_OPTIONS)
def record_source_pick(**kwargs: Any) -> None:
    _run("record_source_pick", feedback.record_source_pick, kwargs)


@app.task(name="workers.feedback_tasks.record_feedback_batch", **_TASK_OPTIONS)
def record_feedback_batch(events: list[dict[str, Any]]) -> int:
    """Votes and vote reactions batched by the bot (bot.worker_client.VoteBatcher), recorded in one transaction.
    The bot wrote them through already when PostgreSQL was up; re-applying the same events changes nothing."""
    settings = get_settings()
    with raw_connection(settings) as conn:
        return feedback.record_vote_events(settings, events, conn=conn)
