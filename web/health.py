"""The Settings page: the configuration as Lore reads it (secrets masked) and the health of what it depends on."""

from __future__ import annotations

import time
from typing import Any

from pydantic import SecretStr

from lore.config import Settings
from lore.db import redact

_MASK = "•••••• (set)"


def config_rows(settings: Settings) -> list[tuple[str, str]]:
    """(environment variable, value) for every setting; secrets show only whether they are set."""
    rows = []
    for name, field in type(settings).model_fields.items():
        alias = field.validation_alias
        env = alias if isinstance(alias, str) else name.upper()
        if not isinstance(env, str):
            env = name.upper()
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = _MASK
        elif value is None:
            shown = "(unset)"
        elif name in ("database_url", "redis_url"):
            shown = redact(str(value))
        else:
            shown = str(value)
        rows.append((env, shown))
    return sorted(rows)


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # each check reports its own failure; the page shows it
        detail, ok = f"{type(exc).__name__}: {str(exc)[:200]}", False
    return {"ok": ok, "detail": detail, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database(settings: Settings) -> str:
    from lore.db import raw_connection

    with raw_connection(settings) as conn:
        row = conn.execute("SELECT current_setting('server_version'), (SELECT count(*) FROM documents)").fetchone()
    assert row is not None
    return f"PostgreSQL {row[0]}, {row[1]} documents"


def _redis(settings: Settings) -> str:
    if settings.broker_is_amqp:
        return "broker is RabbitMQ (not checked here)"
    import redis

    redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1).ping()
    return "PONG"


def _workers(settings: Settings) -> str:
    from workers.app import app

    replies = app.control.ping(timeout=1.0)
    if not replies:
        raise RuntimeError("no Celery worker answered within 1 s: start one with `lore worker`")
    return f"{len(replies)} worker(s): " + ", ".join(sorted(name for r in replies for name in r))


def _slack(settings: Settings) -> str:
    if settings.slack_bot_token is None:
        return "not configured (the console works without Slack)"
    from slack_sdk import WebClient

    client = WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url, timeout=3)
    reply = client.auth_test()
    return f"team {reply.get('team')}, bot user {reply.get('user_id')}"


def health(settings: Settings) -> dict[str, Any]:
    return {
        "database": _timed(lambda: _database(settings)),
        "redis": _timed(lambda: _redis(settings)),
        "workers": _timed(lambda: _workers(settings)),
        "slack": _timed(lambda: _slack(settings)),
    }
