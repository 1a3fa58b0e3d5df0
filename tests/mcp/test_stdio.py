"""`lore mcp` over stdio, driven by the official MCP client from a clean process, as a desktop client runs it:
every tool and the resources, checked against the knowledge base and the permission canaries."""

from __future__ import annotations

import json
import subprocess
import sys

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from harness.canary_kb import (
    MEMBER,
    OTHER_CANARY,
    OTHER_PRIVATE,
    OUTSIDER,
    PUBLIC_URI,
    QUESTION,
    QUESTION_TWO,
    SECRET_CANARY,
    SECRET_CHANNEL,
    leaked,
    private_uri,
)
from harness.slack_api import FakeSlack
from lore.config import Settings
from lore.db import raw_connection
from lore.tokens import create_token, revoke_token
from tests.mcp.conftest import REPO, error_text, lore_cli, slack_env, stdio_client, structured

TOOLS = {"search", "ask", "get_document", "vote", "list_sources"}


async def _check_tools(client: Client) -> None:
    listed = (await client.list_tools()).tools
    assert {t.name for t in listed} == TOOLS
    for tool in listed:
        assert tool.description and tool.input_schema["type"] == "object" and tool.output_schema
        # No tool takes an argument that could widen what the caller sees.
        assert not {"acl", "channel", "channels", "user", "user_id"} & set(tool.input_schema.get("properties", {}))
    search = next(t for t in listed if t.name == "search")
    assert set(search.input_schema["properties"]) == {"query", "k", "mode"}
    assert search.input_schema["required"] == ["query"]


async def _member_session(client: Client) -> int:
    await _check_tools(client)
    found = structured(await client.call_tool("search", {"query": QUESTION, "k": 5}))
    passages = found["results"]
    assert passages and set(passages[0]) >= {"uri", "title", "heading", "score", "text", "chunk_id"}
    uris = [p["uri"] for p in passages]
    assert private_uri(SECRET_CHANNEL) in uris and PUBLIC_URI in uris and private_uri(OTHER_PRIVATE) not in uris
    assert SECRET_CANARY in json.dumps(passages) and OTHER_CANARY not in json.dumps(passages)
    team = structured(await client.call_tool("search", {"query": "where does the team sit", "k": 1}))["results"]
    assert team[0]["uri"] == PUBLIC_URI and team[0]["heading"] == "Nightjar > Team"
    # Extra arguments are refused, not ignored: a channel cannot be smuggled in.
    refused = await client.call_tool("search", {"query": QUESTION_TWO, "channel": OTHER_PRIVATE})
    assert "channel" in error_text(refused) and OTHER_CANARY not in error_text(refused)

    document = structured(await client.call_tool("get_document", {"uri": private_uri(SECRET_CHANNEL)}))
    assert SECRET_CANARY in document["text"] and document["title"] == f"{SECRET_CHANNEL} notes"
    assert document["chunks"] == 1 and document["truncated"] is False
    hidden = error_text(await client.call_tool("get_document", {"uri": private_uri(OTHER_PRIVATE)}))
    unknown = error_text(await client.call_tool("get_document", {"uri": "slack://C0NOPE/p1"}))
    assert hidden.replace(private_uri(OTHER_PRIVATE), "U") == unknown.replace("slack://C0NOPE/p1", "U")

    sources = structured(await client.call_tool("list_sources", {}))
    assert sources["documents"] == 2 and sources["chunks"] == 3
    assert sorted(s["documents"] for s in sources["sources"]) == [2]

    resources = (await client.list_resources()).resources
    assert sorted(r.uri for r in resources) == sorted([PUBLIC_URI, private_uri(SECRET_CHANNEL)])
    read = await client.read_resource(private_uri(SECRET_CHANNEL))
    assert SECRET_CANARY in read.contents[0].text  # type: ignore[union-attr]
    for uri in (private_uri(OTHER_PRIVATE), "slack://C0NOPE/p1"):
        with pytest.raises(MCPError, match="no document with uri"):
            await client.read_resource(uri)

    answer = structured(await client.call_tool("ask", {"question": QUESTION}))
    assert SECRET_CANARY in answer["answer"] and OTHER_CANARY not in answer["answer"]
    assert answer["model"] == "search-only" and answer["citations"][0]["number"] == 1
    assert private_uri(SECRET_CHANNEL) in [c["uri"] for c in answer["citations"]]
    voted = structured(await client.call_tool("vote", {"answer_id": answer["answer_id"], "value": "down"}))
    assert voted == {"answer_id": answer["answer_id"], "value": "down", "user": MEMBER}
    structured(await client.call_tool("vote", {"answer_id": answer["answer_id"], "value": "up"}))  # latest wins
    # With up, the caller may name the cited source that answered it; only a source the answer showed.
    cited = answer["citations"][0]["uri"]
    named = {"answer_id": answer["answer_id"], "value": "up"}
    assert "not one of the sources" in error_text(await client.call_tool("vote", {**named, "source": "kb://elsewhere"}))
    assert "only be named with an up vote" in error_text(
        await client.call_tool("vote", {**named, "value": "down", "source": cited})
    )
    structured(await client.call_tool("vote", {**named, "source": cited}))
    return int(answer["answer_id"])


async def _bad_input(client: Client) -> None:
    assert "query is empty" in error_text(await client.call_tool("search", {"query": "   "}))
    long_query = error_text(await client.call_tool("search", {"query": ("nightjar " * 1200)[:10_000]}))
    assert "10,000 characters" in long_query and "2,000" in long_query
    assert "question is empty" in error_text(await client.call_tool("ask", {"question": ""}))
    unknown_answer = await client.call_tool("vote", {"answer_id": 999999, "value": "up"})
    assert "no answer with id 999999" in error_text(unknown_answer)
    assert "value" in error_text(await client.call_tool("vote", {"answer_id": 1, "value": "sideways"}))
    assert "k: Input should be greater than or equal to 1" in error_text(
        await client.call_tool("search", {"query": "nightjar", "k": 0})
    )
    with pytest.raises(MCPError, match="unknown tool"):
        await client.call_tool("delete_everything", {})
    # Still serving, and still right.
    after = structured(await client.call_tool("search", {"query": QUESTION}))
    assert SECRET_CANARY in json.dumps(after)


def test_a_member_sees_their_channel_and_every_tool_works(kb: Settings, fake_slack: FakeSlack) -> None:
    env = slack_env(fake_slack)

    async def session() -> int:
        async with stdio_client(env, "--user", MEMBER) as client:
            answer_id = await _member_session(client)
            await _bad_input(client)
            return answer_id

    answer_id = anyio.run(session)
    with raw_connection(kb) as conn:
        row = conn.execute("SELECT surface, user_id, private FROM answers WHERE id = %s", (answer_id,)).fetchone()
        votes = conn.execute("SELECT user_id, value, via FROM votes WHERE answer_id = %s", (answer_id,)).fetchall()
    assert row == ("mcp", MEMBER, True)  # recorded like a DM's answer
    assert votes == [(MEMBER, 1, "mcp")]
    stats = lore_cli(env, "feedback", "stats")
    assert stats["answers"] == 1 and stats["up"] == 1 and stats["down"] == 0
    assert stats["by_surface"] == [{"surface": "mcp", "answers": 1, "up": 1, "down": 0, "up_rate": 1.0}]
    # The user's memberships came from Slack's users.conversations.
    assert [c["user"] for c in fake_slack.calls_to("users.conversations")] == [MEMBER]


def test_an_outsider_sees_no_private_channel_on_any_tool(kb: Settings, fake_slack: FakeSlack) -> None:
    async def session() -> list[object]:
        seen: list[object] = []
        async with stdio_client(slack_env(fake_slack), "--user", OUTSIDER, mode="legacy") as client:
            for arguments in (
                {"query": QUESTION},
                {"query": QUESTION_TWO, "k": 50},
                {"query": "CANARY NIGHTJAR PAYROLL", "mode": "fulltext"},
                {"query": "launch codename vault passphrase", "mode": "vector"},
            ):
                seen.append((await client.call_tool("search", arguments)).model_dump())
            for question in (QUESTION, QUESTION_TWO):
                seen.append((await client.call_tool("ask", {"question": question})).model_dump())
            for uri in (private_uri(SECRET_CHANNEL), private_uri(OTHER_PRIVATE), PUBLIC_URI):
                seen.append((await client.call_tool("get_document", {"uri": uri})).model_dump())
            seen.append((await client.call_tool("list_sources", {})).model_dump())
            seen.append((await client.list_resources()).model_dump())
        return seen

    seen = anyio.run(session)
    text = json.dumps(seen)
    assert leaked(text) == [] and "notes" not in text  # neither the canaries nor the private documents' titles
    assert "mobile app" in text  # answered from the public page, not refused
    assert [r["uri"] for r in seen[-1]["resources"]] == [PUBLIC_URI]  # type: ignore[index]


def test_without_slack_or_without_a_user_public_documents_only(kb: Settings, fake_slack: FakeSlack) -> None:
    no_slack = {k: v for k, v in slack_env(fake_slack).items() if not k.startswith("SLACK_BOT")}

    async def session(env: dict[str, str], *args: str) -> str:
        async with stdio_client(env, *args) as client:
            found = await client.call_tool("search", {"query": QUESTION})
            sources = await client.call_tool("list_sources", {})
            answer = structured(await client.call_tool("ask", {"question": QUESTION}))
            vote = await client.call_tool("vote", {"answer_id": answer["answer_id"], "value": "up"})
            return json.dumps([found.model_dump(), sources.model_dump(), answer, vote.model_dump()])

    as_member = anyio.run(session, no_slack, "--user", MEMBER)
    assert leaked(as_member) == [] and PUBLIC_URI in as_member and '"value": "up"' in as_member
    assert fake_slack.calls_to("users.conversations") == []
    anonymous = anyio.run(session, slack_env(fake_slack), *())
    assert leaked(anonymous) == [] and PUBLIC_URI in anonymous and "a vote needs a user" in anonymous
    with raw_connection(kb) as conn:
        askers = conn.execute("SELECT user_id, surface FROM answers ORDER BY id").fetchall()
    assert askers == [(MEMBER, "mcp"), (None, "mcp")]


def test_a_token_acts_as_its_user_until_it_is_revoked(kb: Settings, fake_slack: FakeSlack) -> None:
    env = slack_env(fake_slack)
    issued = create_token(kb, user_id=MEMBER)

    async def session() -> None:
        async with stdio_client(env, "--token", issued.token) as client:
            found = structured(await client.call_tool("search", {"query": QUESTION}))
            assert SECRET_CANARY in json.dumps(found)
            assert revoke_token(kb, issued.id)
            with pytest.raises(MCPError, match=f"token {issued.id} has been revoked"):
                await client.call_tool("search", {"query": QUESTION})
            with pytest.raises(MCPError, match="revoked"):
                await client.list_resources()
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS  # still serving

    anyio.run(session)
    # A revoked (or unknown) token does not start a server at all.
    for token in (issued.token, "lore_pat_not-a-real-token", "hunter2"):
        done = subprocess.run(
            [sys.executable, "-m", "lore.cli", "mcp", "--token", token],
            env=env, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2 and done.stdout == "", (done.stdout, done.stderr[-1000:])
        assert "lore: error: " in done.stderr and ("revoked" in done.stderr or "invalid token" in done.stderr)
        assert token not in done.stderr or token == "hunter2"
