"""Personal access tokens: create, list, revoke, authenticate, and the per-token rate limit.

A token is `lore_pat_` + 256 random bits; only its sha256 is stored, so a copy of the database gives no usable
token. The same table serves every surface that takes a token (MCP over HTTP, `lore mcp --token`, the web
console and its API): a token acts as its user, with that user's permissions (lore.access), and `admin` marks
the tokens that may administer Lore where a surface offers that.

The rate limit counts calls per token in fixed one-minute windows in Redis (the broker every Lore process
already reaches), so replicas share one count. When Redis cannot be reached (or the broker is RabbitMQ) each
process counts on its own: a broker outage must not take search down with it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lore.config import Settings
from lore.db import raw_connection
from lore.logs import kv

log = logging.getLogger(__name__)

TOKEN_PREFIX = "lore_pat_"
# Characters of a token shown by `lore token list` (the prefix and four of the secret's 43).
HINT_CHARS = len(TOKEN_PREFIX) + 4
DEFAULT_RATE_PER_MINUTE = 240
_WINDOW_S = 60
# Writing last_used_at on every call would make each authenticated call a write; once a minute is enough.
_LAST_USED_EVERY = "60 seconds"


class TokenError(PermissionError):
    """A token that does not authenticate: malformed, unknown or revoked (the message says which)."""


class RateLimited(PermissionError):
    """A token made more calls this minute than it may."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"rate limit exceeded: {limit} calls a minute for this token; retry in {retry_after} s")
        self.limit = limit
        self.retry_after = retry_after


@dataclass(frozen=True)
class TokenInfo:
    """Who a token acts as: what every surface needs after authenticating it."""

    id: int
    user_id: str
    admin: bool
    rate_per_minute: int
    # Names the token in rate counters: the start of its hash (ids are reused after a test's TRUNCATE).
    key: str


@dataclass(frozen=True)
class IssuedToken:
    id: int
    token: str
    user_id: str
    admin: bool

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "token": self.token, "user": self.user_id, "admin": self.admin}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    settings: Settings, *, user_id: str, admin: bool = False, name: str = "", rate_per_minute: int | None = None
) -> IssuedToken:
    """A new token for `user_id`; the returned secret is the only copy there will ever be."""
    user_id = user_id.strip()
    if not user_id:
        raise ValueError("a token needs a user id")
    if rate_per_minute is not None and rate_per_minute < 1:
        raise ValueError("rate_per_minute must be at least 1")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with raw_connection(settings) as conn:
        row = conn.execute(
            """INSERT INTO api_tokens (user_id, admin, name, token_hash, hint, rate_per_minute)
               VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
            (user_id, admin, name, hash_token(token), token[:HINT_CHARS], rate_per_minute),
        ).fetchone()
    assert row is not None
    log.info(kv("token_created", id=row[0], user=user_id, admin=admin))
    return IssuedToken(id=int(row[0]), token=token, user_id=user_id, admin=admin)


def list_tokens(settings: Settings) -> list[dict[str, Any]]:
    """Every token, newest first, without secrets (which are not stored) or hashes."""
    with raw_connection(settings) as conn:
        rows = conn.execute(
            """SELECT id, user_id, admin, name, hint, rate_per_minute, created_at, last_used_at, revoked_at
               FROM api_tokens ORDER BY id DESC"""
        ).fetchall()
    return [
        {
            "id": int(i),
            "user": user,
            "admin": bool(admin),
            "name": name,
            "hint": hint + "…",
            "rate_per_minute": rate or DEFAULT_RATE_PER_MINUTE,
            "created_at": _iso(created),
            "last_used_at": _iso(used),
            "revoked_at": _iso(revoked),
            "active": revoked is None,
        }
        for i, user, admin, name, hint, rate, created, used, revoked in rows
    ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def revoke_token(settings: Settings, token_id: int) -> bool:
    """Revoke a token at once (every later call with it fails); False if no active token has that id."""
    with raw_connection(settings) as conn:
        updated = conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (token_id,)
        ).rowcount
    if updated:
        log.info(kv("token_revoked", id=token_id))
    return bool(updated)


_AUTHENTICATE = f"""
WITH found AS (
    SELECT id, user_id, admin, rate_per_minute, revoked_at, last_used_at FROM api_tokens WHERE token_hash = %s
), touched AS (
    UPDATE api_tokens t SET last_used_at = now() FROM found
    WHERE t.id = found.id AND found.revoked_at IS NULL
      AND (found.last_used_at IS NULL OR found.last_used_at < now() - interval '{_LAST_USED_EVERY}')
)
SELECT id, user_id, admin, rate_per_minute, revoked_at IS NOT NULL FROM found
"""


def authenticate(settings: Settings, token: str) -> TokenInfo:
    """The token's identity, or TokenError: malformed, unknown and revoked tokens are refused."""
    token = token.strip()
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise TokenError("invalid token: not a Lore token (they start with lore_pat_)")
    hashed = hash_token(token)
    with raw_connection(settings) as conn:
        row = conn.execute(_AUTHENTICATE, (hashed,)).fetchone()
    if row is None:
        raise TokenError("invalid token: unknown (create one with `lore token create`)")
    token_id, user_id, admin, rate, revoked = row
    if revoked:
        raise TokenError(f"token {token_id} has been revoked")
    return TokenInfo(
        id=int(token_id),
        user_id=str(user_id),
        admin=bool(admin),
        rate_per_minute=int(rate or DEFAULT_RATE_PER_MINUTE),
        key=hashed[:16],
    )


# -- rate limit -----------------------------------------------------------------------------------------

_local_counts: dict[tuple[str, int], int] = {}
_local_lock = threading.Lock()
_redis_clients: dict[str, Any] = {}


def _redis(settings: Settings) -> Any:
    if settings.broker_is_amqp:
        return None
    client = _redis_clients.get(settings.redis_url)
    if client is None:
        import redis

        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
        _redis_clients[settings.redis_url] = client
    return client


def _count(settings: Settings, token_key: str, window: int) -> int:
    """Calls of this token in this window so far, this one included."""
    client = _redis(settings)
    if client is not None:
        import redis

        key = f"lore:rate:token:{token_key}:{window}"
        try:
            pipe = client.pipeline()
            pipe.incr(key)
            pipe.expire(key, 2 * _WINDOW_S)
            return int(pipe.execute()[0])
        except redis.RedisError as exc:
            log.warning(kv("rate_limit_local", reason=type(exc).__name__))
    with _local_lock:
        for stale in [k for k in _local_counts if k[1] < window]:
            del _local_counts[stale]
        _local_counts[(token_key, window)] = count = _local_counts.get((token_key, window), 0) + 1
    return count


def consume(settings: Settings, token: TokenInfo) -> None:
    """Count one call of `token`; RateLimited when it is over its limit for this minute."""
    now = time.time()
    window = int(now // _WINDOW_S)
    if _count(settings, token.key, window) > token.rate_per_minute:
        raise RateLimited(token.rate_per_minute, max(1, int((window + 1) * _WINDOW_S - now + 0.999)))
