"""Personal access tokens: create, list, revoke, authenticate, and the per-token rate limit.

A token is `lore_pat_` + 256 random bits; only its sha256 is stored, so a copy of the database gives no usable
token. The same table serves every surface that takes a token (MCP over HTTP, `lore mcp --token`, the web
console and its API): a token acts as its user, with that user's permissions (lore.access), and `admin` marks
the tokens that may administer Lore where a surface offers that.

The rate limit counts calls per token over the last 60 seconds (a sliding window) in Redis, the broker every
Lore process already reaches, so replicas share one count. When Redis cannot be reached (or the broker is RabbitMQ) each
process counts on its own: a broker outage must not take search down with it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import threading
import time
from collections import deque
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

# A sliding window: a call is let through when the token made fewer than its limit in the 60 seconds before it.
# Fixed one-minute buckets would let twice the limit through across a bucket's edge (and refuse nothing to a
# burst that straddles it). Redis keeps the token's accepted calls as a sorted set scored by time; the script
# drops those older than the window, counts, and records this call only if it is let through, so a client that
# keeps calling while refused is not locked out for longer than its oldest call takes to age out.
_SLIDING_WINDOW = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return -1
end
return tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
"""

_local_calls: dict[str, deque[float]] = {}
_local_lock = threading.Lock()
_redis_scripts: dict[str, Any] = {}


def _sliding_window(settings: Settings) -> Any:
    """The window's script bound to this process's Redis client, or None where the broker is RabbitMQ."""
    if settings.broker_is_amqp:
        return None
    script = _redis_scripts.get(settings.redis_url)
    if script is None:
        import redis

        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
        script = _redis_scripts[settings.redis_url] = client.register_script(_SLIDING_WINDOW)
    return script


def _admit(settings: Settings, token_key: str, limit: int, now: float) -> float | None:
    """None when the call is let through (and counted); else when the oldest call in the window was made."""
    script = _sliding_window(settings)
    if script is not None:
        import redis

        now_ms = int(now * 1000)
        try:
            oldest_ms = int(
                script(
                    keys=[f"lore:rate:token:{token_key}"],
                    args=[now_ms, _WINDOW_S * 1000, limit, f"{now_ms}:{secrets.token_hex(4)}"],
                )
            )
            return None if oldest_ms < 0 else oldest_ms / 1000
        except redis.RedisError as exc:
            log.warning(kv("rate_limit_local", reason=type(exc).__name__))
    with _local_lock:
        calls = _local_calls.setdefault(token_key, deque())
        while calls and calls[0] <= now - _WINDOW_S:
            calls.popleft()
        if len(calls) < limit:
            calls.append(now)
            return None
        return calls[0]


def consume(settings: Settings, token: TokenInfo, *, now: float | None = None) -> None:
    """Count one call of `token` made at `now` (default: this instant); RateLimited when it made its limit of calls
    in the minute before it already."""
    now = time.time() if now is None else now
    oldest = _admit(settings, token.key, token.rate_per_minute, now)
    if oldest is not None:
        raise RateLimited(token.rate_per_minute, max(1, math.ceil(oldest + _WINDOW_S - now)))
