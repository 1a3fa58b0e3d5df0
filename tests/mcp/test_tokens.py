"""Personal tokens: `lore token create|list|revoke`, stored only as a hash, revocable, rate-limited per token."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from click.testing import CliRunner

from lore.cli import main
from lore.config import Settings
from lore.db import raw_connection
from lore.tokens import RateLimited, TokenError, authenticate, consume, create_token


def _cli(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output[-2000:]
    return json.loads(result.stdout) if code == 0 and "--json" in args else result


def test_create_list_revoke(db: Settings) -> None:
    created = _cli("token", "create", "--user", "U0ALICE", "--json")
    assert set(created) == {"id", "token", "user", "admin"}
    assert created["user"] == "U0ALICE" and created["admin"] is False and created["token"].startswith("lore_pat_")
    admin = _cli("token", "create", "--user", "U0ADMIN", "--admin", "--name", "console", "--json")
    assert admin["admin"] is True and admin["id"] != created["id"]

    with raw_connection(db) as conn:
        stored = conn.execute("SELECT * FROM api_tokens").fetchall()
    assert created["token"] not in json.dumps(stored, default=str)  # only its hash is kept
    digests = [hashlib.sha256(t["token"].encode()).hexdigest() for t in (created, admin)]
    assert all(d in json.dumps(stored, default=str) for d in digests)

    listed = _cli("token", "list", "--json")
    assert [t["id"] for t in listed] == [admin["id"], created["id"]]
    assert created["token"] not in json.dumps(listed) and listed[0]["name"] == "console"
    assert listed[1]["hint"].startswith("lore_pat_") and all(t["active"] for t in listed)

    assert authenticate(db, created["token"]).user_id == "U0ALICE"
    assert _cli("token", "revoke", str(created["id"]), "--json") == {"id": created["id"], "revoked": True}
    with pytest.raises(TokenError, match="revoked"):
        authenticate(db, created["token"])
    assert "no active token" in _cli("token", "revoke", str(created["id"]), code=2).output
    assert [t["active"] for t in _cli("token", "list", "--json")] == [True, False]
    assert authenticate(db, admin["token"]).admin is True
    assert "--user" in _cli("token", "create", code=2).output


@pytest.mark.parametrize("broker", ["test redis", "unreachable"])
def test_the_rate_limit_counts_per_token(db: Settings, redis_url: str, broker: str) -> None:
    settings = db if broker == "test redis" else db.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    slow = authenticate(settings, create_token(settings, user_id="U0A", rate_per_minute=2).token)
    other = authenticate(settings, create_token(settings, user_id="U0A", rate_per_minute=2).token)
    consume(settings, slow)
    consume(settings, slow)
    with pytest.raises(RateLimited, match="2 calls a minute") as refused:
        consume(settings, slow)
    assert 1 <= refused.value.retry_after <= 60
    consume(settings, other)  # a token's count is its own


@pytest.mark.parametrize("broker", ["test redis", "unreachable"])
def test_the_rate_limit_is_a_sliding_minute(db: Settings, redis_url: str, broker: str) -> None:
    settings = db if broker == "test redis" else db.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    token = authenticate(settings, create_token(settings, user_id="U0A", rate_per_minute=2).token)
    edge = 60.0 * 30_000_000  # the start of a clock minute: fixed one-minute buckets would start counting again here
    consume(settings, token, now=edge - 0.5)
    consume(settings, token, now=edge - 0.4)
    with pytest.raises(RateLimited) as refused:
        consume(settings, token, now=edge + 0.1)
    assert refused.value.retry_after == 60  # the first call leaves the window at edge + 59.5
    with pytest.raises(RateLimited):
        consume(settings, token, now=edge + 59.4)
    consume(settings, token, now=edge + 59.55)  # the first call has aged out; the second has not
    with pytest.raises(RateLimited) as again:
        consume(settings, token, now=edge + 59.58)
    assert again.value.retry_after == 1
    consume(settings, token, now=edge + 59.65)  # refused calls were not counted: the second call aged out on time
