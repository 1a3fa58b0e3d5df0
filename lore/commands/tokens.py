"""`lore token create|list|revoke`: personal access tokens for MCP over HTTP, `lore mcp --token` and the console."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from lore.commands.common import EXIT_USAGE, emit_json, fail, load_settings
from lore.db import DatabaseError


@click.group("token")
def token_group() -> None:
    """Personal access tokens: each acts as one Slack user, with that user's permissions."""


@token_group.command("create")
@click.option("--user", "user_id", required=True, help="Slack user id the token acts as (its permissions apply).")
@click.option("--admin", is_flag=True, help="The token may also administer Lore where a surface offers that.")
@click.option("--name", default="", help="What the token is for (shown by `lore token list`).")
@click.option("--rate", type=click.IntRange(1, 100_000), default=None, help="Calls a minute (default 240).")
@click.option("--json", "as_json", is_flag=True, help='Print {"id","token","user","admin"} as one JSON document.')
def token_create(user_id: str, admin: bool, name: str, rate: int | None, as_json: bool) -> None:
    """Create a token. Its secret is printed once and stored only as a hash: keep it."""
    from lore.tokens import create_token

    settings = load_settings()
    if not user_id.strip():
        fail("--user must be a Slack user id", EXIT_USAGE)
    try:
        issued = create_token(settings, user_id=user_id, admin=admin, name=name, rate_per_minute=rate)
    except DatabaseError as exc:
        fail(str(exc))
    if as_json:
        emit_json(issued.as_json())
        return
    click.echo(issued.token)
    click.echo(f"token {issued.id} for {issued.user_id}{' (admin)' if admin else ''}: shown once, keep it", err=True)


@token_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (a list).")
def token_list(as_json: bool) -> None:
    """Every token (active and revoked), without secrets."""
    from lore.tokens import list_tokens

    settings = load_settings()
    try:
        tokens = list_tokens(settings)
    except DatabaseError as exc:
        fail(str(exc))
    if as_json:
        emit_json(tokens)
        return
    table = Table()
    for column in ("id", "user", "admin", "name", "token", "rate/min", "created", "last used", "state"):
        table.add_column(column)
    for t in tokens:
        table.add_row(
            str(t["id"]), t["user"], "yes" if t["admin"] else "", t["name"], t["hint"], str(t["rate_per_minute"]),
            (t["created_at"] or "")[:19], (t["last_used_at"] or "-")[:19],
            "active" if t["active"] else f"revoked {(t['revoked_at'] or '')[:19]}",
        )  # fmt: skip
    Console().print(table)


@token_group.command("revoke")
@click.argument("token_id", type=int)
@click.option("--json", "as_json", is_flag=True, help='Print {"id","revoked"} as one JSON document.')
def token_revoke(token_id: int, as_json: bool) -> None:
    """Revoke token ID at once: every later call with it is refused."""
    from lore.tokens import revoke_token

    settings = load_settings()
    try:
        revoked = revoke_token(settings, token_id)
    except DatabaseError as exc:
        fail(str(exc))
    if not revoked:
        fail(f"no active token with id {token_id} (see `lore token list`)", EXIT_USAGE)
    if as_json:
        emit_json({"id": token_id, "revoked": True})
    else:
        click.echo(f"token {token_id} revoked")
