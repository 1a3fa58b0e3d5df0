"""The MCP tests' knowledge base and clients: the permission canaries of tests/reliability (two private channels,
each with its own canary, and a public page on the same subject), a fake Slack that knows who is in which
channel, and the official MCP client driving `lore mcp` over stdio or `lore serve --http` over streamable HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from harness.canary_kb import CANARIES, build_canary_kb
from harness.openai_server import FakeOpenAI
from harness.procs import LORE, clean_env, serve_http
from harness.slack_api import FakeSlack
from lore.config import Settings
from tests.fakes.fixtures import fake_openai  # noqa: F401 - the fixture `served` uses

REPO = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "mcp-tests-signing-secret-0123456789"


@pytest.fixture
def kb(db: Settings, fake_slack: FakeSlack) -> Settings:
    """The canary knowledge base, and a Slack where MEMBER is in SECRET_CHANNEL and OUTSIDER in no private one."""
    build_canary_kb(db, fake_slack)
    return db


def slack_env(fake_slack: FakeSlack) -> dict[str, str]:
    """The environment of a Lore process that reaches the fake Slack (and no model: search-only answers)."""
    return clean_env(
        SLACK_API_URL=fake_slack.url, SLACK_BOT_TOKEN="xoxb-mcp-tests", SLACK_SIGNING_SECRET=SIGNING_SECRET
    )


def stdio_client(env: dict[str, str], *args: str, mode: str = "auto") -> Client:
    """The official client, starting `lore mcp ARGS` as a client application would: a clean child process.
    `mode="legacy"` speaks the initialize handshake of the 2025 protocol versions, as most clients still do."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "lore.cli", "mcp", *args], env=env, cwd=REPO)
    return Client(params, read_timeout_seconds=120, mode=mode)


@asynccontextmanager
async def http_client(url: str, token: str | None, *, mode: str = "auto") -> AsyncIterator[Client]:
    """The official client over streamable HTTP, sending `Authorization: Bearer TOKEN` (mode: as stdio_client)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as http,
        Client(streamable_http_client(url + "/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


def structured(result: CallToolResult) -> Any:
    """A successful tool result's structured content (which its text content repeats as JSON)."""
    assert not result.is_error, result.content
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return result.content[0].text  # type: ignore[union-attr]


def lore_cli(env: dict[str, str], *args: str) -> Any:
    """`lore ARGS --json` in a subprocess; its one JSON document."""
    done = subprocess.run([*LORE, *args, "--json"], env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def echo_context(body: dict[str, Any]) -> str:
    """A scripted chat model that answers from the context it was given: the canary it saw, else the public page."""
    prompt = json.dumps(body.get("messages", []))
    seen = [canary for canary, _ in CANARIES.values() if canary in prompt]
    return f"The launch codename is {seen[0]} [1]." if seen else "Project Nightjar is the new mobile app [1]."


@pytest.fixture
def served(kb: Settings, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """`lore serve --http` as a real process, with the fake Slack and a scripted chat model; its base URL."""
    fake_openai.responder = echo_context
    env = slack_env(fake_slack) | {
        "LORE_BOT_PROCESSES": "0",
        "OPENAI_BASE_URL": fake_openai.url,
        "LORE_CHAT_MODEL": "fake-model",
        "LORE_AGENT": "chain",
    }
    service, url = serve_http(env, tmp_path / "serve.log")
    try:
        yield url
    finally:
        output = service.stop()
    assert "lore_pat_" not in output  # no token in the logs
    assert "Traceback" not in output, output[-3000:]
