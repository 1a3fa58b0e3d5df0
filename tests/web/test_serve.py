"""`lore serve --http` mounts the console and its API beside Slack's endpoint and MCP: same routes, same rules."""

from __future__ import annotations

from pathlib import Path

import httpx

from harness.canary_kb import MEMBER, OUTSIDER, QUESTION
from harness.openai_server import FakeOpenAI
from harness.procs import serve_http
from harness.slack_api import FakeSlack
from lore.config import Settings
from lore.tokens import create_token
from tests.web.conftest import console_env, echo_context, leaked


def test_lore_serve_http_serves_the_console_and_the_api(
    kb: Settings, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = echo_context
    env = console_env(fake_slack, fake_openai, SLACK_SIGNING_SECRET="console-serve-secret", LORE_BOT_PROCESSES="0")
    service, url = serve_http(env, tmp_path / "serve.log")
    try:
        outsider = create_token(kb, user_id=OUTSIDER).token
        member = create_token(kb, user_id=MEMBER).token
        assert httpx.get(url + "/api/v1/search", params={"q": QUESTION}).status_code == 401
        page = httpx.get(url + "/console/ask")
        assert page.status_code == 401 and "Sign in to Lore" in page.text
        headers = {"Authorization": f"Bearer {outsider}"}
        found = httpx.get(url + "/api/v1/search", params={"q": QUESTION}, headers=headers, timeout=60)
        assert found.status_code == 200 and found.json() and leaked(found.text) == []
        answer = httpx.post(url + "/api/v1/ask", json={"question": QUESTION}, headers=headers, timeout=60)
        assert answer.status_code == 200 and leaked(answer.text) == []
        mine = httpx.get(url + "/api/v1/search", params={"q": QUESTION}, headers={"Authorization": f"Bearer {member}"})
        assert "CANARY-NIGHTJAR-5521" in mine.text
        assert httpx.get(url + "/healthz").status_code == 200  # Slack's side still there
        assert httpx.post(url + "/slack/events", content=b"{}").status_code in (401, 415)
    finally:
        output = service.stop()
    assert "lore_pat_" not in output and "Traceback" not in output, output[-3000:]
