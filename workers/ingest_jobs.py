"""Ingest jobs: `queue_ingest` splits sources into batches (rows in ingest_batches) and sends one
`ingest_batch` task per batch, by name, so callers (the CLI, the bot) need not import task code."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from ingest import store
from ingest.document import LoadError
from ingest.loaders import files, slack, web
from lore.config import Settings
from lore.db import raw_connection
from lore.logs import kv
from workers.app import INGEST_QUEUE, app

log = logging.getLogger(__name__)

INGEST_BATCH = "workers.ingest_tasks.ingest_batch"


def _plan(
    settings: Settings, sources: list[str], crawl_depth: int | None
) -> tuple[list[list[dict[str, Any]]], int, list[LoadError]]:
    """Batches of work items; directories are listed (and synced: vanished files deleted) right here."""
    batches: list[list[dict[str, Any]]] = []
    errors: list[LoadError] = []
    deleted = 0
    size = settings.ingest_batch_docs
    for source in sources:
        if slack.is_slack(source) or web.is_url(source):
            batches.append([{"source": source, "depth": crawl_depth}])
        elif os.path.isdir(source):
            root = os.path.abspath(source)
            listed: list[str] = []
            complete = True
            for entry in files.list_tree(source, skipped=[]):
                if isinstance(entry, LoadError):
                    errors.append(entry)
                    complete = complete and not entry.error.startswith(files.UNREADABLE_DIR)
                else:
                    listed.append(entry)
            if complete:
                deleted += store.delete_vanished(settings, root, [files.file_uri(p) for p in listed])
            batches.extend(
                [{"source": p, "root": root} for p in listed[i : i + size]] for i in range(0, len(listed), size)
            )
        elif os.path.lexists(source):
            batches.append([{"source": source}])
        else:
            errors.append(LoadError(source, f"no such file or directory: {source}"))
    return batches, deleted, errors


def queue_ingest(
    settings: Settings, sources: list[str], *, acl: list[str] | None = None, crawl_depth: int | None = None
) -> int:
    """Create an ingest_jobs row and its batches, send one `ingest` task per batch; return the job id."""
    batches, deleted, errors = _plan(settings, sources, crawl_depth)
    counts = {"documents_deleted": deleted} if deleted else {}
    status = "queued" if batches else "done"
    with raw_connection(settings) as conn:
        row = conn.execute(
            "INSERT INTO ingest_jobs (status, sources, acl, batches_total, counts, errors)"
            " VALUES (%s, %s::jsonb, %s, %s, %s::jsonb, %s::jsonb) RETURNING id",
            (
                status,
                json.dumps(sources),
                acl,
                len(batches),
                json.dumps(counts),
                json.dumps([e.as_json() for e in errors]),
            ),
        ).fetchone()
        assert row is not None
        job_id = int(row[0])
        if batches:
            conn.execute(
                "INSERT INTO ingest_batches (job_id, batch_no, sources)"
                " SELECT %s, n - 1, b FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS t(b, n)",
                (job_id, json.dumps(batches)),
            )
    for batch_no in range(len(batches)):
        app.send_task(INGEST_BATCH, args=(job_id, batch_no), queue=INGEST_QUEUE)
    log.info(kv("ingest.queued", job=job_id, batches=len(batches), sources=len(sources)))
    return job_id
