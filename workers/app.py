"""The Celery application: Redis broker and result backend (or RabbitMQ, for an amqp:// REDIS_URL), queues,
reliability settings, beat schedule."""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from lore.config import Settings, get_settings

INGEST_QUEUE = "ingest"
FEEDBACK_QUEUE = "feedback"

# Task names say where each task is defined. They were all "workers.tasks.<function>" once: messages queued
# under those names still run the same task (registered under both names by workers/tasks.py).
FORMER_NAMES: dict[str, str] = {
    "workers.tasks.ingest_batch": "workers.ingest_tasks.ingest_batch",
    "workers.tasks.ingest_slack_thread": "workers.ingest_tasks.ingest_slack_thread",
    "workers.tasks.ingest_slack_message": "workers.ingest_tasks.ingest_slack_message",
    "workers.tasks.sync_slack_channels": "workers.ingest_tasks.sync_slack_channels",
    "workers.tasks.record_reaction": "workers.feedback_tasks.record_reaction",
    "workers.tasks.record_vote": "workers.feedback_tasks.record_vote",
    "workers.tasks.record_comparison": "workers.feedback_tasks.record_comparison",
    "workers.tasks.record_critique": "workers.feedback_tasks.record_critique",
    "workers.tasks.record_feedback_batch": "workers.feedback_tasks.record_feedback_batch",
}

# Periodic jobs other modules add (name -> schedule entry); `configure` copies them into beat_schedule.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {}


def configure(app: Celery, settings: Settings) -> Celery:
    app.conf.update(
        broker_url=settings.redis_url,
        # Nothing waits on task results (jobs report to ingest_jobs and the feedback tables); Redis keeps them
        # for an hour for inspection, RabbitMQ has no result store of its own.
        result_backend=None if settings.broker_is_amqp else settings.redis_url,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Work that must not be lost: acknowledged only when done, requeued if the worker dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(INGEST_QUEUE), Queue(FEEDBACK_QUEUE)],
        task_default_queue=INGEST_QUEUE,
        task_routes={
            "workers.ingest_tasks.*": {"queue": INGEST_QUEUE},
            "workers.feedback_tasks.*": {"queue": FEEDBACK_QUEUE},
            # The former names (FORMER_NAMES), for whatever still sends them.
            "workers.tasks.ingest_*": {"queue": INGEST_QUEUE},
            "workers.tasks.sync_*": {"queue": INGEST_QUEUE},
            "workers.tasks.record_*": {"queue": FEEDBACK_QUEUE},
        },
        # A redelivered task after a crash must wait no longer than the slowest task (ingest batches).
        broker_transport_options={
            "visibility_timeout": settings.celery_visibility_timeout_s,
            # kombu scans for tasks whose worker vanished (connection lost, process killed) only every
            # interval x throttle seconds (100 s by default) and only then redelivers them: a Redis restart
            # mid-burst left votes undelivered for minutes. Scan every few seconds instead (one ZRANGE each).
            "unacked_restore_interval": max(1.0, min(10.0, settings.celery_visibility_timeout_s / 2)),
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        result_expires=3600,
        beat_schedule={
            **BEAT_SCHEDULE,
            # Incremental Slack history sync (resumable: each run starts from the stored cursor).
            "sync-slack-channels": {
                "task": "workers.ingest_tasks.sync_slack_channels",
                "schedule": settings.slack_sync_minutes * 60,
            },
        },
        timezone="UTC",
        worker_hijack_root_logger=False,
    )
    return app


def create_celery(settings: Settings | None = None) -> Celery:
    app = Celery("lore", include=["workers.tasks"])
    return configure(app, settings or get_settings())


app = create_celery()
