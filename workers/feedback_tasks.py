"""Feedback tasks on the `feedback` queue, and `submit_feedback`, the bot's one way to record feedback.

The bot must never lose a vote: `submit_feedback` stamps the event time before sending (so a redelivery
carries the same time and cannot undo a newer event), gives the broker a short connect timeout, and when
the broker cannot take the task it records the feedback straight in PostgreSQL instead.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import sqlalchemy.exc
from celery import Task
from kombu import Connection

from lore import feedback
from lore.config import Settings, get_settings
from lore.db import DatabaseError, raw_connection
from workers.app import FEEDBACK_QUEUE, app

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


def _run(name: str, call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    try:
        if name in _ORDERED:
            return _group_commit.record(name, call, kwargs)
        return call(get_settings(), **kwargs)
    except feedback.FeedbackError as exc:
        log.warning("event=feedback_rejected task=%s error=%s", name, exc)
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
            log.warning("event=feedback_batch_failed size=%s fallback=one_by_one", len(batch), exc_info=True)
            for item in ordered:
                try:
                    item.result, item.error = item.call(settings, **item.kwargs), None
                except Exception as exc:
                    item.error = exc
        for item in batch:
            item.done.set()


_group_commit = GroupCommit()


@app.task(name="workers.tasks.record_reaction", **_TASK_OPTIONS)
def record_reaction(**kwargs: Any) -> bool | None:
    result: bool | None = _run("record_reaction", feedback.record_reaction, kwargs)
    return result


@app.task(name="workers.tasks.record_vote", **_TASK_OPTIONS)
def record_vote(**kwargs: Any) -> None:
    _run("record_vote", feedback.record_vote, kwargs)


@app.task(name="workers.tasks.record_comparison", **_TASK_OPTIONS)
def record_comparison(**kwargs: Any) -> None:
    _run("record_comparison", feedback.record_comparison, kwargs)


@app.task(name="workers.tasks.record_critique", **_TASK_OPTIONS)
def record_critique(**kwargs: Any) -> None:
    _run("record_critique", feedback.record_critique, kwargs)


TASKS: dict[str, Task] = {
    "record_reaction": record_reaction,
    "record_vote": record_vote,
    "record_comparison": record_comparison,
    "record_critique": record_critique,
}
DIRECT: dict[str, Callable[..., Any]] = {
    "record_reaction": feedback.record_reaction,
    "record_vote": feedback.record_vote,
    "record_comparison": feedback.record_comparison,
    "record_critique": feedback.record_critique,
}
# Events whose order matters carry an event time; the others are idempotent upserts without one.
_ORDERED = frozenset({"record_reaction", "record_vote"})

# kombu connections are not thread-safe: one per thread (the HTTP server handles events on several).
_local = threading.local()


def _connection(settings: Settings) -> Connection:
    conn: Connection | None = getattr(_local, "conn", None)
    if conn is None or getattr(_local, "url", None) != settings.redis_url:
        timeout = settings.feedback_broker_timeout_s
        conn = app.connection_for_write(
            settings.redis_url,
            connect_timeout=timeout,
            # max_retries 0: one connection attempt. Without it kombu sleeps 2 s between attempts, holding the
            # bot's listener thread for seconds per vote while the broker is down, before falling back.
            transport_options={"socket_connect_timeout": timeout, "socket_timeout": timeout, "max_retries": 0},
        )
        _local.conn, _local.url = conn, settings.redis_url
    return conn


def _drop_connection() -> None:
    conn: Connection | None = getattr(_local, "conn", None)
    _local.conn = None
    if conn is not None:
        try:
            conn.release()
        except Exception:  # a broken connection may fail to close; it is discarded either way
            log.debug("event=broker_release_failed", exc_info=True)


def submit_feedback(settings: Settings, task_name: str, **kwargs: Any) -> None:
    """Send a feedback task (`record_reaction`, `record_vote`, ...; the `workers.tasks.` prefix is optional)
    to the feedback queue. Votes are also written through to PostgreSQL first; other feedback is recorded
    directly in PostgreSQL when the broker cannot take it."""
    name = task_name.removeprefix("workers.tasks.")
    if name not in TASKS:
        raise ValueError(f"unknown feedback task {task_name!r}; expected one of {sorted(TASKS)}")
    if name in _ORDERED and kwargs.get("event_ts") is None:
        kwargs["event_ts"] = feedback.now_ts()
    if name in _ORDERED:
        # Votes are written through to PostgreSQL first: durable before the broker is involved, so neither a
        # broker outage nor tasks stranded by a broker restart can lose one. The task still goes to the worker,
        # where re-applying the same event (same event_ts) changes nothing. With PostgreSQL down, the task
        # alone carries the vote (it retries with backoff until the database is back).
        try:
            DIRECT[name](settings, **kwargs)
        except feedback.FeedbackError as exc:
            log.warning("event=feedback_rejected task=%s error=%s", name, exc)
            return
        except (*_TRANSIENT, DatabaseError) as exc:
            log.warning("event=feedback_write_through_failed task=%s error=%s", name, type(exc).__name__)
    try:
        TASKS[name].apply_async(kwargs=kwargs, queue=FEEDBACK_QUEUE, connection=_connection(settings), retry=False)
        return
    except Exception as exc:  # any broker failure: kombu, redis and socket errors differ by transport
        _drop_connection()
        log.warning("event=feedback_broker_down task=%s error=%s fallback=postgresql", name, type(exc).__name__)
    if name not in _ORDERED:
        DIRECT[name](settings, **kwargs)
