"""The `lore` command: the composition root, the one place that wires bot/, workers/ and ingest/ together."""

from __future__ import annotations

import logging
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lore import __version__
from lore.commands.common import EXIT_FAILED, EXIT_USAGE, emit_json, fail, load_settings
from lore.config import Settings
from lore.db import (
    CONNECT_REMEDY,
    DatabaseError,
    check_database,
    database_url,
    first_line,
    redact,
    stop_embedded,
    table_counts,
)
from lore.logs import setup_logging

log = logging.getLogger(__name__)


class _LoreGroup(click.Group):
    """The top-level group: a database failure no command handled still ends in one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        import psycopg

        try:
            return super().invoke(ctx)
        except psycopg.errors.UndefinedTable:
            fail("the database is not migrated: run `lore db upgrade`")
        except psycopg.OperationalError as exc:
            fail(f"cannot connect to the database: {first_line(exc)}. {CONNECT_REMEDY}")


# Commands that run for hours log what they do; one-shot and interactive commands print their result, and their
# output stays clean of INFO lines unless asked for (-v, or LORE_LOG_LEVEL).
LONG_RUNNING = frozenset({"serve", "worker", "beat", "console"})


def log_level_for(settings: Settings, command: str | None, verbose: int) -> str:
    if verbose:
        return "DEBUG" if verbose > 1 else "INFO"
    if "log_level" in settings.model_fields_set or command in LONG_RUNNING:
        return settings.log_level
    return "WARNING"


@click.group(cls=_LoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lore")
@click.option("-v", "--verbose", count=True, help="Log INFO (-v) or DEBUG (-vv) lines to stderr.")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """Lore: answers your team's questions from its own documents, and learns from reactions."""
    settings = load_settings()
    setup_logging(log_level_for(settings, ctx.invoked_subcommand, verbose))


# -- database -----------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database: migrate, show the URL, stop the embedded server."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from lore.migrations import upgrade_database

    settings = load_settings()
    try:
        upgrade_database(settings, revision)
    except DatabaseError as exc:
        fail(str(exc))
    click.echo(f"database at {redact(database_url(settings))} is at {revision}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (`base` removes every table)."""
    from alembic import command
    from lore.migrations import alembic_config

    settings = load_settings()
    try:
        check_database(settings)
    except DatabaseError as exc:
        fail(str(exc))
    command.downgrade(alembic_config(settings), revision)
    click.echo(f"database downgraded to {revision}")


@db.command("url")
@click.option("--json", "as_json", is_flag=True, help='Print {"url", "embedded"} as one JSON document.')
def db_url(as_json: bool) -> None:
    """Print the database URL in use (starting the embedded server if needed)."""
    settings = load_settings()
    try:
        url = database_url(settings)
    except DatabaseError as exc:
        fail(str(exc))
    if as_json:
        emit_json({"url": url, "embedded": settings.database_url is None})
    else:
        click.echo(url)


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL server (it otherwise keeps running for other Lore processes)."""
    settings = load_settings()
    if settings.database_url:
        fail("DATABASE_URL is set: Lore does not manage that server", EXIT_USAGE)
    click.echo("stopped" if stop_embedded(settings) else "not running")


# -- status -------------------------------------------------------------------------------------------


def broker_status(settings: Settings) -> dict[str, Any]:
    """Whether the Celery broker (Redis, or RabbitMQ for an amqp:// REDIS_URL) answers, and its version."""
    url = settings.redis_url
    try:
        if settings.broker_is_amqp:
            from kombu import Connection

            with Connection(url, connect_timeout=2) as conn:
                conn.connect()
                version = conn.connection.server_properties.get("version")
            return {"reachable": True, "version": f"RabbitMQ {version}" if version else "AMQP"}
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        info = client.info("server")
        return {"reachable": True, "version": info.get("redis_version")}
    except Exception as exc:
        return {"reachable": False, "error": f"{type(exc).__name__}: {exc}"}


def collect_status(settings: Settings) -> dict[str, Any]:
    from sqlalchemy.exc import ProgrammingError

    from lore.models import TABLES

    info = check_database(settings)
    try:
        counts: dict[str, int] | None = table_counts(settings, TABLES)
    except ProgrammingError:
        counts = None
    return {
        "version": __version__,
        "database": info,
        "tables": counts,
        "migrated": counts is not None,
        "redis": {"url": redact(settings.redis_url), **broker_status(settings)},
        "chat_model": settings.effective_chat_model,
        "embeddings": settings.embeddings,
        "slack": "socket" if settings.slack_app_token else ("http" if settings.slack_configured else "off"),
    }


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def status(as_json: bool) -> None:
    """Database, pgvector version, table counts, Redis reachable."""
    settings = load_settings()
    try:
        report = collect_status(settings)
    except DatabaseError as exc:
        fail(str(exc))
    if as_json:
        emit_json(report)
        return
    console = Console()
    database = report["database"]
    console.print(f"[bold]Lore {report['version']}[/bold]")
    kind = "embedded" if database["embedded"] else "external"
    console.print(f"database   {database['url']} ({kind})")
    console.print(f"postgres   {database['postgres_version']}")
    console.print(
        f"pgvector   {database['pgvector_installed'] or 'not installed (run `lore db upgrade`)'}"
        f" (available {database['pgvector_available']})"
    )
    redis_info = report["redis"]
    reach = (
        f"reachable, {redis_info['version']}" if redis_info["reachable"] else f"NOT reachable ({redis_info['error']})"
    )
    console.print(f"broker     {redis_info['url']} {reach}")
    console.print(f"chat model {report['chat_model'] or 'none (search-only answers)'}")
    console.print(f"embeddings {report['embeddings']}")
    console.print(f"slack      {report['slack']}")
    if report["tables"] is None:
        console.print("tables     not migrated: run `lore db upgrade`")
        return
    table = Table(title="tables")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in report["tables"].items():
        table.add_row(name, str(count))
    console.print(table)


# -- workers ------------------------------------------------------------------------------------------


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--concurrency", "-c", default=2, show_default=True)
@click.option("--queues", "-Q", default="ingest,feedback", show_default=True)
@click.pass_context
def worker(ctx: click.Context, concurrency: int, queues: str) -> None:
    """Run a Celery worker (the Procfile's `worker` line)."""
    from workers.app import app

    settings = load_settings()
    _require_broker(settings)
    try:
        database_url(settings)  # start the embedded server before forking pool processes
    except DatabaseError as exc:
        fail(str(exc))
    argv = ["worker", "--loglevel", settings.log_level, "-c", str(concurrency), "-Q", queues, *ctx.args]
    app.worker_main(argv)


@main.command()
def beat() -> None:
    """Run Celery beat (periodic syncs; the Procfile's `beat` line)."""
    from workers.app import app

    settings = load_settings()
    _require_broker(settings)
    schedule = settings.home / "celerybeat-schedule"
    settings.home.mkdir(parents=True, exist_ok=True)
    app.start(["beat", "--loglevel", settings.log_level, "--schedule", str(schedule)])


def _require_broker(settings: Settings) -> None:
    state = broker_status(settings)
    if not state["reachable"]:
        server, command = ("RabbitMQ", "rabbitmq-server") if settings.broker_is_amqp else ("Redis", "redis-server")
        fail(
            f"{server} at {redact(settings.redis_url)} is not reachable ({state['error']}): "
            f"start {command} or set REDIS_URL",
            EXIT_FAILED,
        )


# -- commands from the other parts (one line each; keep this block sorted) -----------------------------

from lore.commands.ask import COMMANDS as ask_commands  # noqa: E402

for _command in ask_commands:
    main.add_command(_command)

from lore.commands.chat import chat  # noqa: E402

main.add_command(chat)

from lore.commands.console import console  # noqa: E402

main.add_command(console)

from lore.commands.feedback import COMMANDS as feedback_commands  # noqa: E402

for _command in feedback_commands:
    main.add_command(_command)

from lore.commands.finetune_embedder import register as register_finetune_embedder  # noqa: E402

register_finetune_embedder(main)

from lore.commands.ingest import ingest  # noqa: E402

main.add_command(ingest)

from lore.commands.mcp import mcp_command  # noqa: E402

main.add_command(mcp_command)

from lore.commands.serve import serve  # noqa: E402

main.add_command(serve)

from lore.commands.tokens import token_group  # noqa: E402

main.add_command(token_group)


def run() -> None:
    main(prog_name="lore")


if __name__ == "__main__":
    run()
