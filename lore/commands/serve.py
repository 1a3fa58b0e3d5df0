"""`lore serve`: run the Slack bot over HTTP (uvicorn, with MCP at /mcp and the console at /console/ and /api/v1)
or Socket Mode."""

from __future__ import annotations

import click

from lore.commands.common import EXIT_USAGE, fail, load_settings
from lore.config import ConfigError
from lore.db import DatabaseError, check_database


@click.command()
@click.option("--http", "mode", flag_value="http", help="Serve Slack's HTTP requests (POST /slack/events).")
@click.option("--socket", "mode", flag_value="socket", help="Connect to Slack over Socket Mode (no public URL).")
@click.option("--port", type=int, default=None, help="HTTP port (default: LORE_PORT or PORT, else 3000).")
@click.option("--host", default=None, help="HTTP bind address (default: LORE_HOST, else 0.0.0.0).")
def serve(mode: str | None, port: int | None, host: str | None) -> None:
    """Run the Slack bot. Without a flag: Socket Mode when SLACK_APP_TOKEN is set, HTTP otherwise."""
    from slack_bolt.error import BoltError

    settings = load_settings()
    mode = mode or ("socket" if settings.slack_app_token else "http")
    try:
        settings.require_socket() if mode == "socket" else settings.require_http()
        check_database(settings)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except DatabaseError as exc:
        fail(str(exc))
    from bot.app import create_app
    from bot.server import run_http, run_socket

    try:
        bolt_app = create_app(settings)
    except BoltError as exc:
        fail(f"Slack rejected the bot token (auth.test at {settings.slack_api_url}): {exc}", EXIT_USAGE)
    if mode == "socket":
        run_socket(settings, bolt_app=bolt_app)
        return
    from starlette.routing import Route

    from mcp_server.http import PATH, mcp_http_app
    from web.app import console_routes

    mcp_app, mcp_lifespan = mcp_http_app(settings)
    run_http(
        settings,
        host=host or settings.http_host,
        port=port or settings.http_port,
        bolt_app=bolt_app,
        extra_routes=[Route(PATH, endpoint=mcp_app), *console_routes(settings)],
        lifespan=mcp_lifespan,
    )
