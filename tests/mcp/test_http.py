"""MCP over streamable HTTP at /mcp of a real `lore serve --http`, driven by the official client: Bearer tokens
only (401 otherwise, and nothing runs), a token's user's permissions, revocation and the rate limit."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from click.testing import CliRunner
from mcp.shared.exceptions import MCPError

from harness.canary_kb import (
    MEMBER,
    OTHER_CANARY,
    OUTSIDER,
    PUBLIC_URI,
    QUESTION,
    SECRET_CANARY,
    SECRET_CHANNEL,
    leaked,
    private_uri,
)
from harness.slack_api import FakeSlack
from lore.cli import main
from lore.config import Settings
from lore.db import raw_connection
from lore.tokens import create_token, revoke_token
from tests.mcp.conftest import error_text, http_client, structured

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}
ASK = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "ask", "arguments": {"question": QUESTION}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _answers(settings: Settings) -> int:
    with raw_connection(settings) as conn:
        row = conn.execute("SELECT count(*) FROM answers").fetchone()
    return int(row[0]) if row else 0


def _export(settings: Settings, *flags: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["feedback", "export", "--format", "trl-sft", *flags], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_without_a_valid_bearer_token_nothing_runs(served: str, kb: Settings) -> None:
    revoked = create_token(kb, user_id=MEMBER)
    revoke_token(kb, revoked.id)
    cases = {
        "missing bearer token": {},
        "not a Lore token": {"Authorization": "Bearer hunter2"},
        "unknown": {"Authorization": "Bearer lore_pat_" + "x" * 43},
        "has been revoked": {"Authorization": f"Bearer {revoked.token}"},
        "missing bearer token ": {"Authorization": f"Basic {revoked.token}"},
    }
    for reason, headers in cases.items():
        for body in (INITIALIZE, ASK):
            response = httpx.post(served + "/mcp", json=body, headers=MCP_HEADERS | headers, timeout=30)
            assert response.status_code == 401, (reason, response.text)
            assert response.json()["error"] == "invalid_token"
            assert reason.strip() in response.json()["error_description"]
            assert response.headers["www-authenticate"].startswith("Bearer ")
    assert httpx.get(served + "/mcp", timeout=30).status_code == 401
    assert _answers(kb) == 0  # the ask calls never ran
    assert httpx.get(served + "/healthz", timeout=30).status_code == 200


def test_a_tokens_user_gets_every_tool_with_their_permissions(served: str, kb: Settings, fake_slack: FakeSlack) -> None:
    member = create_token(kb, user_id=MEMBER)
    outsider = create_token(kb, user_id=OUTSIDER)

    async def member_session() -> int:
        async with http_client(served, member.token) as client:
            assert {t.name for t in (await client.list_tools()).tools} == {
                "search", "ask", "get_document", "vote", "list_sources",
            }  # fmt: skip
            found = structured(await client.call_tool("search", {"query": QUESTION, "k": 3}))
            assert SECRET_CANARY in json.dumps(found) and OTHER_CANARY not in json.dumps(found)
            document = structured(await client.call_tool("get_document", {"uri": private_uri(SECRET_CHANNEL)}))
            assert SECRET_CANARY in document["text"]
            sources = structured(await client.call_tool("list_sources", {}))
            assert sources["documents"] == 2
            resources = (await client.list_resources()).resources
            assert sorted(r.uri for r in resources) == sorted([PUBLIC_URI, private_uri(SECRET_CHANNEL)])
            answer = structured(await client.call_tool("ask", {"question": QUESTION}))
            assert answer["answer"] == f"The launch codename is {SECRET_CANARY} [1]."
            assert answer["generated"] and answer["model"] == "fake-model"
            assert answer["citations"] == [{"number": 1, "uri": private_uri(SECRET_CHANNEL), "title": "G0SECRET notes"}]
            structured(await client.call_tool("vote", {"answer_id": answer["answer_id"], "value": "up"}))
            assert "query is empty" in error_text(await client.call_tool("search", {"query": ""}))
            return int(answer["answer_id"])

    async def outsider_session(member_answer: int) -> str:
        async with http_client(served, outsider.token, mode="legacy") as client:
            seen = [
                (await client.call_tool("search", {"query": QUESTION, "k": 10})).model_dump(),
                (await client.call_tool("ask", {"question": QUESTION})).model_dump(),
                (await client.call_tool("get_document", {"uri": private_uri(SECRET_CHANNEL)})).model_dump(),
                (await client.list_resources()).model_dump(),
            ]
            # Someone else's answer (from a DM) is not theirs to vote on: the same error as an unknown one.
            refused = error_text(await client.call_tool("vote", {"answer_id": member_answer, "value": "down"}))
            assert f"no answer with id {member_answer}" in refused
            with pytest.raises(MCPError, match="no document with uri"):
                await client.read_resource(private_uri(SECRET_CHANNEL))
            return json.dumps(seen)

    answer_id = anyio.run(member_session)
    seen = anyio.run(outsider_session, answer_id)
    assert leaked(seen) == [] and "mobile app" in seen
    with raw_connection(kb) as conn:
        answers = conn.execute("SELECT user_id, surface FROM answers ORDER BY id").fetchall()
        votes = conn.execute("SELECT answer_id, user_id, value, via FROM votes").fetchall()
        evidence = conn.execute("SELECT count(*) FROM feedback_evidence WHERE answer_id = %s", (answer_id,)).fetchone()
    assert answers == [(MEMBER, "mcp"), (OUTSIDER, "mcp")]
    assert votes == [(answer_id, MEMBER, 1, "mcp")]
    assert evidence is not None and evidence[0] >= 1  # the vote is evidence for the feedback memory
    # Recorded like a DM's answer: in the exports that include private conversations, not in the others.
    with_private = _export(kb, "--include-private")
    assert [r["messages"][-1]["content"] for r in with_private] == [f"The launch codename is {SECRET_CANARY} [1]."]
    assert QUESTION in json.dumps(with_private[0]["messages"][:-1])
    assert _export(kb) == []


def test_revocation_and_the_rate_limit_apply_at_once(served: str, kb: Settings) -> None:
    limited = create_token(kb, user_id=OUTSIDER, rate_per_minute=3)
    doomed = create_token(kb, user_id=MEMBER)

    async def session() -> None:
        async with http_client(served, limited.token) as client:
            for _ in range(3):
                structured(await client.call_tool("search", {"query": "nightjar"}))
            with pytest.raises(MCPError, match="rate limit exceeded: 3 calls a minute"):
                await client.call_tool("search", {"query": "nightjar"})
        async with http_client(served, doomed.token) as client:
            structured(await client.call_tool("list_sources", {}))
            revoke_token(kb, doomed.id)
            with pytest.raises(MCPError):
                await client.call_tool("list_sources", {})

    anyio.run(session)
    refused = httpx.post(
        served + "/mcp", json=INITIALIZE, headers=MCP_HEADERS | {"Authorization": f"Bearer {doomed.token}"}, timeout=30
    )
    assert refused.status_code == 401 and "revoked" in refused.json()["error_description"]
    # Others are served as before.
    member = create_token(kb, user_id=MEMBER)

    async def still_serving() -> None:
        async with http_client(served, member.token) as client:
            structured(await client.call_tool("list_sources", {}))

    anyio.run(still_serving)
