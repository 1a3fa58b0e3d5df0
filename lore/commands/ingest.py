"""`lore ingest PATH|URL|slack://CHANNEL...`: into the knowledge base inline (progress bar) or via Celery."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from lore.commands.common import EXIT_FAILED, EXIT_USAGE, emit_json, fail, load_settings

if TYPE_CHECKING:
    from ingest.pipeline import IngestReport
    from lore.config import Settings


@click.command("ingest")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--channel",
    "channels",
    multiple=True,
    metavar="C",
    help="Only askers in channel C may see these documents (repeatable). Default: public.",
)
@click.option(
    "--queue", "use_queue", is_flag=True, help="Send Celery jobs (the `ingest` queue) instead of working here."
)
@click.option("--wait", is_flag=True, help="With --queue: wait until the workers have finished the job.")
@click.option("--depth", type=click.IntRange(0, 10), default=None, help="Follow same-host links this deep from a URL.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def ingest(
    sources: tuple[str, ...],
    channels: tuple[str, ...],
    use_queue: bool,
    wait: bool,
    depth: int | None,
    as_json: bool,
) -> None:
    """Files, directories (synced: vanished files are removed), URLs and slack://CHANNEL into the knowledge base."""
    from lore.db import DatabaseError
    from lore.embeddings import EmbeddingError

    settings = load_settings()
    if wait and not use_queue:
        fail("--wait goes with --queue (an ingest without --queue is done when the command returns)", EXIT_USAGE)
    acl = list(channels) or None
    try:
        if use_queue:
            from workers.ingest_jobs import queue_ingest

            job_id = queue_ingest(settings, list(sources), acl=acl, crawl_depth=depth)
            if not as_json:
                click.echo(f"queued ingest job {job_id}: `lore worker` processes it (table ingest_jobs has progress)")
            job = _wait_for_job(settings, job_id, quiet=as_json) if wait else _job_report(settings, job_id)
            if as_json:
                emit_json(job)
            elif wait:
                click.echo(_summary(job))
                for error in job["errors"]:
                    click.echo(f"  {error['source']}: {error['error']}", err=True)
            if job["errors"] or job["status"] == "failed":
                sys.exit(EXIT_FAILED)
            return
        report = _run_inline(settings, list(sources), acl=acl, depth=depth, show_progress=not as_json)
    except DatabaseError as exc:
        fail(str(exc))
    except EmbeddingError as exc:
        fail(str(exc), EXIT_USAGE)
    if as_json:
        emit_json(report.as_json())
    else:
        click.echo(
            f"{_summary(report.as_json())} ({report.chunks_embedded} embedded), "
            f"{report.skipped} files skipped (unsupported type, build assets, generated index and contents pages)"
        )
        for error in report.errors:
            click.echo(f"  {error.source}: {error.error}", err=True)
    if report.errors:
        sys.exit(EXIT_FAILED)


def _run_inline(
    settings: Settings, sources: list[str], *, acl: list[str] | None, depth: int | None, show_progress: bool
) -> IngestReport:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ingest.pipeline import ingest_sources

    if not show_progress:
        return ingest_sources(settings, sources, acl=acl, crawl_depth=depth)
    columns = (
        TextColumn("[bold]ingest[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", style="dim"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("", total=None)

        def progress(label: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=label[-60:])

        return ingest_sources(settings, sources, acl=acl, progress=progress, crawl_depth=depth)


# The counts of `lore ingest --json`, reported for a queued job too (`--queue --json`): so far when just queued
# (its "status" says so), final with --wait.
COUNT_KEYS = ("documents_added", "documents_updated", "documents_unchanged", "documents_deleted", "chunks_added")


def _summary(report: dict[str, Any]) -> str:
    return (
        f"{report['documents_added']} added, {report['documents_updated']} updated, "
        f"{report['documents_unchanged']} unchanged, {report['documents_deleted']} deleted, "
        f"{len(report['errors'])} errors, {report['chunks_added']} chunks written"
    )


def _job_report(settings: Settings, job_id: int) -> dict[str, Any]:
    from lore.db import raw_connection

    with raw_connection(settings) as conn:
        row = conn.execute(
            "SELECT status, counts, errors, batches_done, batches_total FROM ingest_jobs WHERE id = %s", (job_id,)
        ).fetchone()
    assert row is not None, f"ingest job {job_id} vanished"
    status, counts, errors, done, total = row
    return {
        "job_id": job_id,
        "status": status,
        **{key: int(counts.get(key, 0)) for key in COUNT_KEYS},
        "errors": list(errors),
        "batches_done": done,
        "batches_total": total,
    }


def _wait_for_job(settings: Settings, job_id: int, *, quiet: bool) -> dict[str, Any]:
    """Poll the job until the workers have finished it; its batches so far on stderr unless quiet."""
    shown = -1
    while True:
        job = _job_report(settings, job_id)
        if job["status"] in ("done", "failed"):
            return job
        if not quiet and job["batches_done"] != shown:
            shown = job["batches_done"]
            click.echo(f"job {job_id}: {shown}/{job['batches_total']} batches done", err=True)
        time.sleep(0.5)
