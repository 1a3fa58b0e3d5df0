"""`lore ingest PATH|URL|slack://CHANNEL...`: into the knowledge base inline (progress bar) or via Celery."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

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
@click.option("--depth", type=click.IntRange(0, 10), default=None, help="Follow same-host links this deep from a URL.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def ingest(
    sources: tuple[str, ...], channels: tuple[str, ...], use_queue: bool, depth: int | None, as_json: bool
) -> None:
    """Files, directories (synced: vanished files are removed), URLs and slack://CHANNEL into the knowledge base."""
    import psycopg

    from lore.db import DatabaseError
    from lore.embeddings import EmbeddingError

    settings = load_settings()
    acl = list(channels) or None
    try:
        if use_queue:
            from workers.ingest_tasks import queue_ingest

            job_id = queue_ingest(settings, list(sources), acl=acl, crawl_depth=depth)
            if as_json:
                emit_json({"job_id": job_id, "status": "queued"})
            else:
                click.echo(f"queued ingest job {job_id}: `lore worker` processes it (table ingest_jobs has progress)")
            return
        report = _run_inline(settings, list(sources), acl=acl, depth=depth, show_progress=not as_json)
    except DatabaseError as exc:
        fail(str(exc))
    except EmbeddingError as exc:
        fail(str(exc), EXIT_USAGE)
    except psycopg.errors.UndefinedTable:
        fail("the database is not migrated: run `lore db upgrade`")
    if as_json:
        emit_json(report.as_json())
    else:
        click.echo(
            f"{report.documents_added} added, {report.documents_updated} updated, "
            f"{report.documents_unchanged} unchanged, {report.documents_deleted} deleted, "
            f"{report.chunks_added} chunks written ({report.chunks_embedded} embedded), "
            f"{report.skipped} files skipped (unsupported type or build assets), {len(report.errors)} errors"
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
