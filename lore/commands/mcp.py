"""`lore mcp`: Lore as an MCP server on stdio, for local clients (desktop apps, IDEs, agents)."""

from __future__ import annotations

import click

from lore.commands.common import EXIT_USAGE, fail, load_settings


@click.command("mcp")
@click.option("--user", "user_id", default=None, help="Act as this Slack user: public documents plus their channels.")
@click.option("--token", default=None, help="Act as the user of this personal token (`lore token create`).")
def mcp_command(user_id: str | None, token: str | None) -> None:
    """Serve MCP on stdio. Permissions are those of a DM with Lore; without --user or --token, public documents only."""
    from lore.db import DatabaseError, check_database
    from lore.tokens import TokenError
    from mcp_server.stdio import resolver, run_stdio, stdout_to_stderr

    if user_id is not None and token is not None:
        fail("give --user or --token, not both", EXIT_USAGE)
    if user_id is not None and not user_id.strip():
        fail("--user must be a Slack user id", EXIT_USAGE)
    settings = load_settings()
    with stdout_to_stderr():  # nothing but the protocol may reach stdout
        try:
            check_database(settings)
            resolve_caller = resolver(settings, user_id=user_id, token=token)
        except TokenError as exc:
            fail(str(exc), EXIT_USAGE)
        except DatabaseError as exc:
            fail(str(exc))
    run_stdio(settings, resolve_caller=resolve_caller)
