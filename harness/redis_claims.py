"""Redis databases held by one process at a time: a test process (tests/conftest.py) or a benchmark that runs its own
Celery worker. Two processes on one database would share a Celery broker, and each one's worker would take the
other's tasks. A claim is the key lore:test-run:N in database 0, set only if absent."""

from __future__ import annotations

import atexit
from collections.abc import Iterable

CLAIMS_URL = "redis://127.0.0.1:6379/0"
# Deletes the claim only if this owner still holds it (an expired claim may have been taken by another process since).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


def claim_database(numbers: Iterable[int], owner: str, *, ttl_s: int) -> int | None:
    """The first of `numbers` no other process holds, claimed for `owner`, or None when all are held. The claim is
    given back when this process exits, and expires after `ttl_s` in case the process is killed. Raises
    redis.RedisError when Redis is not reachable."""
    import redis

    claims = redis.Redis.from_url(CLAIMS_URL, socket_connect_timeout=2)
    for number in numbers:
        key = f"lore:test-run:{number}"
        if claims.set(key, owner, nx=True, ex=ttl_s):
            atexit.register(claims.eval, _RELEASE, 1, key, owner)
            return number
    return None
