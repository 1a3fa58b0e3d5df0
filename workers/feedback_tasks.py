"""Feedback tasks on the `feedback` queue, and `submit_feedback`, the bot's one way to record feedback.

The bot must never lose a vote: `submit_feedback` stamps the event time before sending (so a redelivery
carries the same time and cannot undo a newer event), gives the broker a short connect timeout, and when
the broker cannot take the task it records the feedback straight in PostgreSQL instead.
"""

from __future__ import annotations

import atexit
import collections
import logging
import queue
import threading
import time
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


@app.task(name="workers.tasks.record_feedback_batch", **_TASK_OPTIONS)
def record_feedback_batch(events: list[dict[str, Any]]) -> int:
    """Votes and vote reactions batched by the bot (VoteBatcher), recorded in one transaction. The bot wrote
    them through already when PostgreSQL was up; re-applying the same events changes nothing."""
    settings = get_settings()
    with raw_connection(settings) as conn:
        return feedback.record_vote_events(settings, events, conn=conn)


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


class VoteBatcher:
    """The bot's way to record votes (reactions, feedback buttons), which arrive by the hundred a second.

    `add` returns at once. One background thread takes everything that arrived while it was busy (up to
    `max_batch`), writes it through to PostgreSQL in one transaction and sends it to the worker as one task:
    one commit and one broker message per batch instead of per vote, so batches grow with the load. When
    PostgreSQL and the broker both refuse a batch it is kept and retried with backoff; a vote is lost only if
    the process dies before either has taken it (the same exposure as any work after Slack's ack).
    """

    def __init__(self, settings: Settings, *, max_batch: int = 500, retry_max_s: float = 30.0) -> None:
        self.settings = settings
        self.max_batch = max_batch
        self.retry_max_s = retry_max_s
        self._items: collections.deque[dict[str, Any]] = collections.deque()
        self._busy = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.batches = 0  # sent or written, for tests and logs

    def add(self, kind: str, **fields: Any) -> None:
        """Queue a {"kind": "reaction" | "vote", ...} event (the arguments of record_reaction / record_vote)."""
        if kind not in ("reaction", "vote"):
            raise ValueError(f"unknown vote event kind {kind!r}")
        event = {"kind": kind, **fields}
        if event.get("event_ts") is None:  # stamped now, so a redelivery cannot undo a newer event
            event["event_ts"] = feedback.now_ts()
        with self._cond:
            self._items.append(event)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="lore-vote-batcher", daemon=True)
                self._thread.start()
                atexit.register(self.flush, 10.0)
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued vote was written or sent; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._items or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _loop(self) -> None:
        delay = 0.5
        while True:
            with self._cond:
                while not self._items:
                    self._cond.wait()
                batch = [self._items.popleft() for _ in range(min(len(self._items), self.max_batch))]
                self._busy = len(batch)
            taken = self._deliver(batch)
            with self._cond:
                self._busy = 0
                if not taken:
                    self._items.extendleft(reversed(batch))
                self._cond.notify_all()
            if taken:
                delay = 0.5
            else:
                time.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)

    def _deliver(self, batch: list[dict[str, Any]]) -> bool:
        written = False
        try:
            with raw_connection(self.settings) as conn:
                feedback.record_vote_events(self.settings, batch, conn=conn)
            written = True
        except Exception as exc:  # the task alone carries the batch (it retries until the database is back)
            log.warning("event=feedback_write_through_failed size=%s error=%s", len(batch), type(exc).__name__)
        try:
            record_feedback_batch.apply_async(
                kwargs={"events": batch}, queue=FEEDBACK_QUEUE, connection=_connection(self.settings), retry=False
            )
            sent = True
        except Exception as exc:
            _drop_connection()
            sent = False
            log.warning(
                "event=feedback_broker_down size=%s error=%s written=%s", len(batch), type(exc).__name__, written
            )
        if written or sent:
            self.batches += 1
            return True
        log.error("event=feedback_batch_deferred size=%s reason=database_and_broker_down", len(batch))
        return False
