"""Ingest tasks: one batch of an ingest job (see workers/ingest_jobs.py), and the Slack tasks for the "Save to
Lore" shortcut, live indexing and the scheduled channel sync.

Tasks are acks_late and idempotent: a batch already marked done is a no-op, and re-ingesting a document is
a no-op by content hash anyway, so a redelivery after a worker died mid-task completes the job without
duplicates. Marking the batch done and adding its counts to the job happen in one transaction.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg

from ingest import store
from ingest.document import LoadError
from ingest.loaders import slack
from ingest.pipeline import IngestReport, Pipeline, ingest_loaded, ingest_sources, open_batch
from lore.config import Settings, get_settings
from lore.db import raw_connection
from lore.logs import kv
from workers.app import app
from workers.ingest_jobs import INGEST_BATCH

log = logging.getLogger(__name__)

_RELIABLE: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True}


def _finish_batch(settings: Settings, job_id: int, batch_no: int, report: IngestReport) -> bool:
    """Mark the batch done and add its counts and errors to the job, once (False when already done)."""
    counts = {k: v for k, v in report.as_json().items() if k != "errors"}
    errors = [e.as_json() for e in report.errors]
    with raw_connection(settings) as conn:
        marked = conn.execute(
            "UPDATE ingest_batches SET done = true, counts = %s::jsonb, errors = %s::jsonb"
            " WHERE job_id = %s AND batch_no = %s AND NOT done RETURNING 1",
            (json.dumps(counts), json.dumps(errors), job_id, batch_no),
        ).fetchone()
        if marked is None:
            return False
        conn.execute(
            """
            UPDATE ingest_jobs j SET
                batches_done = j.batches_done + 1,
                counts = (SELECT coalesce(jsonb_object_agg(k, coalesce((j.counts ->> k)::int, 0)
                                                            + coalesce((%(c)s::jsonb ->> k)::int, 0)), '{}'::jsonb)
                          FROM jsonb_object_keys(j.counts || %(c)s::jsonb) AS k),
                errors = j.errors || %(e)s::jsonb,
                status = CASE WHEN j.batches_done + 1 >= j.batches_total THEN 'done' ELSE 'running' END,
                updated_at = now()
            WHERE j.id = %(job)s
            """,
            {"c": json.dumps(counts), "e": json.dumps(errors), "job": job_id},
        )
    return True


@app.task(
    name=INGEST_BATCH,
    bind=True,
    autoretry_for=(psycopg.OperationalError,),
    retry_backoff=True,
    max_retries=5,
    **_RELIABLE,
)
def ingest_batch(self: Any, job_id: int, batch_no: int) -> dict[str, Any]:
    """Ingest one batch of a job (a no-op when that batch is already done)."""
    settings = get_settings()
    with raw_connection(settings) as conn:
        row = conn.execute(
            "SELECT b.done, b.sources, j.acl FROM ingest_batches b JOIN ingest_jobs j ON j.id = b.job_id"
            " WHERE b.job_id = %s AND b.batch_no = %s",
            (job_id, batch_no),
        ).fetchone()
        if row is None or row[0]:
            return {"job_id": job_id, "batch_no": batch_no, "skipped": True}
        conn.execute(
            "UPDATE ingest_jobs SET status = 'running', updated_at = now() WHERE id = %s AND status = 'queued'",
            (job_id,),
        )
    items: list[dict[str, Any]] = row[1]
    acl: list[str] | None = row[2]
    try:
        report = Pipeline(settings, open_batch(settings, items), acl=acl, allow_bulk=False).run()
    except psycopg.OperationalError:
        raise  # the database went away: retried with backoff
    except Exception as exc:
        # A bug must not leave the job "running" forever: the batch is done, with an error naming it.
        log.exception(kv("ingest.batch_failed", job=job_id, batch=batch_no))
        names = ", ".join(str(item["source"]) for item in items[:3]) + (" ..." if len(items) > 3 else "")
        report = IngestReport(errors=[LoadError(names, f"batch failed: {type(exc).__name__}: {exc}")])
    _finish_batch(settings, job_id, batch_no, report)
    return {"job_id": job_id, "batch_no": batch_no, **report.as_json()}


@app.task(name="workers.ingest_tasks.ingest_slack_thread", **_RELIABLE)
def ingest_slack_thread(channel_id: str, thread_ts: str, acl: list[str] | None = None) -> dict[str, Any]:
    """ "Save to Lore": one Slack thread into the knowledge base (visible in its channel unless acl says)."""
    settings = get_settings()
    items = slack.load_thread(settings, channel_id, thread_ts, acl=acl)
    return ingest_loaded(settings, items, name=f"slack://{channel_id}/{thread_ts}", acl=acl).as_json()


@app.task(name="workers.ingest_tasks.ingest_slack_message", **_RELIABLE)
def ingest_slack_message(
    channel_id: str, ts: str, text: str, user_id: str, thread_ts: str | None = None, deleted: bool = False
) -> dict[str, Any]:
    """Live indexing of one message (new, edited or deleted) in a channel that has it switched on."""
    settings = get_settings()
    client = slack.make_client(settings)
    space = slack.workspace(settings, client)
    if thread_ts and thread_ts != ts:
        # A reply: the thread is the document, so read it again as it is now.
        items = slack.load_thread(settings, channel_id, thread_ts)
        return ingest_loaded(settings, items, name=f"slack://{channel_id}/{thread_ts}").as_json()
    uri = slack.message_uri(space, channel_id, ts)
    if deleted:
        return {**IngestReport().as_json(), "documents_deleted": store.delete_uris(settings, [uri])}
    message = {"user": user_id, "ts": ts, "text": text}
    document = slack.conversation_document(space, channel_id, channel_id, [message], acl=[channel_id])
    if document is None:  # the bot's own message, or nothing to index
        return IngestReport().as_json()
    return ingest_loaded(settings, [document], name=f"slack://{channel_id}/{ts}").as_json()


@app.task(name="workers.ingest_tasks.sync_slack_channels", **_RELIABLE)
def sync_slack_channels() -> dict[str, Any]:
    """Beat: new history of every synced channel since its cursor (resumable; rate limits are waited out)."""
    settings = get_settings()
    if settings.slack_bot_token is None:
        return {"channels": 0, "skipped": "SLACK_BOT_TOKEN is not set"}
    channels = store.synced_channels(settings)
    if not channels:
        return {"channels": 0}
    report = ingest_sources(settings, [f"slack://{c}" for c in channels], allow_bulk=False)
    return {"channels": len(channels), **report.as_json()}
