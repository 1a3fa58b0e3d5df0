"""The bot's one way to hand work to the Celery workers: tasks sent by name, so the bot never imports task code.

Each name says where its task is defined (workers/ingest_tasks.py, workers/feedback_tasks.py); the worker
registers every one of them (tests/test_workers.py checks it). Feedback must never be lost: votes are written
through to PostgreSQL before they are sent, and other feedback is recorded there directly when the broker
cannot take it.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import sqlalchemy.exc
from kombu import Connection

from bot.metrics import record_error
from lore import feedback
from lore.config import Settings
from lore.db import DatabaseError, raw_connection
from lore.logs import kv
from workers.app import FEEDBACK_QUEUE, INGEST_QUEUE
from workers.app import app as celery_app

log = logging.getLogger(__name__)

INGEST_SLACK_THREAD = "workers.ingest_tasks.ingest_slack_thread"
INGEST_SLACK_MESSAGE = "workers.ingest_tasks.ingest_slack_message"
RECORD_REACTION = "workers.feedback_tasks.record_reaction"
RECORD_VOTE = "workers.feedback_tasks.record_vote"
RECORD_COMPARISON = "workers.feedback_tasks.record_comparison"
RECORD_CRITIQUE = "workers.feedback_tasks.record_critique"
RECORD_SOURCE_PICK = "workers.feedback_tasks.record_source_pick"
RECORD_FEEDBACK_BATCH = "workers.feedback_tasks.record_feedback_batch"

# What each feedback task does, for the write-through and for the fallback when the broker is down.
_FEEDBACK: dict[str, Callable[..., Any]] = {
    RECORD_REACTION: feedback.record_reaction,
    RECORD_VOTE: feedback.record_vote,
    RECORD_COMPARISON: feedback.record_comparison,
    RECORD_CRITIQUE: feedback.record_critique,
    RECORD_SOURCE_PICK: feedback.record_source_pick,
}
# Events whose order matters carry an event time; the others are idempotent upserts without one.
_ORDERED = frozenset({RECORD_REACTION, RECORD_VOTE})
_FORMER_PREFIX = "workers.tasks."  # what the feedback tasks were called before, still accepted here
_TRANSIENT = (psycopg.OperationalError, sqlalchemy.exc.OperationalError, DatabaseError)

# kombu connections are not thread-safe: one per thread (the HTTP server handles events on several).
_local = threading.local()


def send_ingest(task_name: str, **kwargs: Any) -> str:
    """Queue an ingest task by name, retrying a broker hiccup briefly; returns the Celery task id."""
    result = celery_app.send_task(
        task_name, kwargs=kwargs, queue=INGEST_QUEUE, retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2}
    )
    log.info(kv("task_sent", task=task_name, id=result.id))
    return str(result.id)


def _connection(settings: Settings) -> Connection:
    conn: Connection | None = getattr(_local, "conn", None)
    if conn is None or getattr(_local, "url", None) != settings.redis_url:
        timeout = settings.feedback_broker_timeout_s
        conn = celery_app.connection_for_write(
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
            log.debug(kv("broker_release_failed"), exc_info=True)


def send_feedback(settings: Settings, task_name: str, **kwargs: Any) -> None:
    """One attempt to put a feedback task on the feedback queue, with a short timeout; raises when it fails."""
    try:
        celery_app.send_task(
            task_name, kwargs=kwargs, queue=FEEDBACK_QUEUE, connection=_connection(settings), retry=False
        )
    except Exception:
        _drop_connection()
        raise


def feedback_task_name(task_name: str) -> str:
    """The full name of a feedback task given as `record_vote`, its full name, or its former full name."""
    short = task_name.removeprefix(_FORMER_PREFIX).rsplit(".", 1)[-1]
    full = f"workers.feedback_tasks.{short}"
    if full not in _FEEDBACK or task_name not in (short, full, _FORMER_PREFIX + short):
        raise ValueError(f"unknown feedback task {task_name!r}; expected one of {sorted(_FEEDBACK)}")
    return full


def submit_feedback(settings: Settings, task_name: str, **kwargs: Any) -> None:
    """Send a feedback task (`record_reaction`, `record_vote`, ...) to the feedback queue. Votes are also written
    through to PostgreSQL first; other feedback is recorded directly in PostgreSQL when the broker cannot take it."""
    name = feedback_task_name(task_name)
    if name in _ORDERED:
        if kwargs.get("event_ts") is None:  # stamped now, so a redelivery cannot undo a newer event
            kwargs["event_ts"] = feedback.now_ts()
        # Durable before the broker is involved, so neither a broker outage nor tasks stranded by a broker restart
        # can lose a vote. The task still goes to the worker, where re-applying the same event changes nothing.
        # With PostgreSQL down, the task alone carries the vote (it retries with backoff until the database is back).
        try:
            _FEEDBACK[name](settings, **kwargs)
        except feedback.FeedbackError as exc:
            log.warning(kv("feedback_rejected", task=name, error=exc))
            return
        except _TRANSIENT as exc:
            log.warning(kv("feedback_write_through_failed", task=name, error=type(exc).__name__))
    try:
        send_feedback(settings, name, **kwargs)
        return
    except Exception as exc:  # any broker failure: kombu, redis and socket errors differ by transport
        log.warning(kv("feedback_broker_down", task=name, error=type(exc).__name__, fallback="postgresql"))
    if name not in _ORDERED:
        _FEEDBACK[name](settings, **kwargs)


class VoteBatcher:
    """Records votes (reactions, feedback buttons), which arrive by the hundred a second.

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
            log.warning(kv("feedback_write_through_failed", size=len(batch), error=type(exc).__name__))
        try:
            send_feedback(self.settings, RECORD_FEEDBACK_BATCH, events=batch)
            sent = True
        except Exception as exc:
            sent = False
            log.warning(kv("feedback_broker_down", size=len(batch), error=type(exc).__name__, written=written))
        if written or sent:
            self.batches += 1
            return True
        log.error(kv("feedback_batch_deferred", size=len(batch), reason="database_and_broker_down"))
        return False


class WorkerClient:
    """What the listeners hand to the workers: ingest jobs, votes (batched) and other feedback.

    Failures are counted and logged here and reported as False (or raised, where the caller tells the user)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._votes: VoteBatcher | None = None
        self._lock = threading.Lock()

    def ingest_thread(self, *, channel_id: str, thread_ts: str, acl: list[str]) -> str:
        """ "Save to Lore": the thread into the knowledge base, visible to `acl`; raises when it cannot be queued."""
        return send_ingest(INGEST_SLACK_THREAD, channel_id=channel_id, thread_ts=thread_ts, acl=acl)

    def ingest_message(self, channel_id: str, message: dict[str, Any], *, deleted: bool) -> bool:
        """Live indexing of one message (new, edited or deleted)."""
        try:
            send_ingest(
                INGEST_SLACK_MESSAGE,
                channel_id=channel_id,
                ts=message.get("ts"),
                text=message.get("text") or "",
                user_id=message.get("user"),
                thread_ts=message.get("thread_ts"),
                deleted=deleted,
            )
        except Exception:
            record_error("live_index")
            log.exception(kv("live_index_failed", channel=channel_id, ts=message.get("ts")))
            return False
        return True

    def queue_ingest(self, sources: list[str], *, acl: list[str]) -> int:
        """An ingest job for `sources` (its batches go to the ingest queue); returns the job id."""
        from workers.ingest_jobs import queue_ingest

        return queue_ingest(self.settings, sources, acl=acl)

    def vote(self, kind: str, **fields: Any) -> bool:
        """Queue a vote reaction (kind "reaction") or button vote (kind "vote") on the vote batcher."""
        try:
            self.votes().add(kind, **fields)
        except Exception:
            record_error("feedback")
            log.exception(kv("feedback_failed", kind=kind))
            return False
        return True

    def votes(self) -> VoteBatcher:
        with self._lock:
            if self._votes is None:
                self._votes = VoteBatcher(self.settings)
            return self._votes

    def record_comparison(self, *, chosen_id: int, rejected_id: int, user_id: str) -> bool:
        return self._submit(RECORD_COMPARISON, chosen_id=chosen_id, rejected_id=rejected_id, user_id=user_id)

    def record_critique(self, *, answer_id: int, user_id: str, critique: str, correction: str | None) -> bool:
        return self._submit(
            RECORD_CRITIQUE, answer_id=answer_id, user_id=user_id, critique=critique, correction=correction
        )

    def record_source_pick(self, *, answer_id: int, user_id: str, source_uri: str) -> bool:
        return self._submit(RECORD_SOURCE_PICK, answer_id=answer_id, user_id=user_id, source_uri=source_uri)

    def _submit(self, task_name: str, **kwargs: Any) -> bool:
        try:
            submit_feedback(self.settings, task_name, **kwargs)
        except Exception:
            record_error("feedback")
            log.exception(kv("feedback_failed", task=task_name))
            return False
        return True
