"""The console tests' world: a canary knowledge base (two private channels, each with its own canary, and a public
page on the same subject), a fake Slack that knows who is in which channel and signs users in (OpenID Connect), a
scripted chat model, and `lore console` or `lore serve --http` as real processes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.canary_kb import CANARIES, build_canary_kb
from harness.canary_kb import leaked as canaries_in
from harness.local_server import free_port
from harness.openai_server import FakeOpenAI
from harness.polling import wait_until
from harness.procs import LORE, Service, clean_env
from harness.slack_api import FakeSlack
from lore.config import Settings
from tests.fakes.fixtures import fake_openai  # noqa: F401 - the fixtures below use it

REPO = Path(__file__).resolve().parents[2]
ADMIN = "U0ADMIN"
CLIENT_ID, CLIENT_SECRET = "1234.5678", "console-tests-client-secret"
# A file dropped into one console conversation: answers there may use it, nowhere else.
ATTACHED_CODE = "BUDGET-7781"
ATTACHED = f"# Nightjar budget\n\nThe Nightjar budget for next year is 1.2 million euros, code {ATTACHED_CODE}.\n"
BUDGET_QUESTION = "What is the Nightjar budget code?"
SOURCES_QUESTION = "Which of my sources mention Nightjar?"


def leaked(text: str) -> list[str]:
    """The canaries (and private channels' document titles) that occur in `text`."""
    return canaries_in(text) + [f"title of {c}" for c in CANARIES if f"{c} notes" in text]


@pytest.fixture
def kb(db: Settings, fake_slack: FakeSlack) -> Settings:
    build_canary_kb(db, fake_slack, more_members={ADMIN: ["C0GENERAL"]})
    return db


def echo_context(body: dict[str, Any]) -> str:
    """A scripted model that answers from the context it was given: the canary it saw, else the public page."""
    prompt = json.dumps(body.get("messages", []))
    seen = [canary for canary, _ in CANARIES.values() if canary in prompt]
    if SOURCES_QUESTION in prompt:  # cite the first two sources it was given
        numbers = re.findall(r'<source id=\\"(\d+)\\"', prompt)[:2]
        return "Nightjar is in " + " and ".join(f"[{n}]" for n in numbers) + "."
    if ATTACHED_CODE in prompt:  # cite the source that holds it, by its number in the prompt
        found = re.search(r'<source id=\\"(\d+)\\"[^<]*?Nightjar budget', prompt)
        return f"The Nightjar budget code is {ATTACHED_CODE} [{found.group(1) if found else 1}]."
    if seen:
        return f"The launch codename is {seen[0]} [1]."
    if float(body.get("temperature") or 0) > 0.5:  # Regenerate samples hotter: a second, different answer
        return "Its public name is not out yet: Project Nightjar, the new mobile app, is announced in March [1]."
    return "Project Nightjar is the new mobile app [1]; the team meets on Tuesdays."


@dataclass
class Console:
    url: str
    token: str  # the run token `lore console` printed
    service: Service

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def bearer(self, token: str | None = None) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {token or self.token}"})


def console_env(fake_slack: FakeSlack, openai: FakeOpenAI, **extra: str) -> dict[str, str]:
    return clean_env(
        SLACK_API_URL=fake_slack.url,
        SLACK_BOT_TOKEN="xoxb-console-tests",
        SLACK_CLIENT_ID=CLIENT_ID,
        SLACK_CLIENT_SECRET=CLIENT_SECRET,
        LORE_ADMIN_USERS=ADMIN,
        OPENAI_BASE_URL=openai.url,
        LORE_CHAT_MODEL="fake-model",
        LORE_AGENT="chain",
        **extra,
    )


def start_console(env: dict[str, str], log: Path, *, worker: bool = False) -> Console:
    """`lore console` on a free port, as a person runs it; its URL and the run token it printed."""
    port = free_port()
    args = [*LORE, "console", "--port", str(port), "--no-browser", "--worker" if worker else "--no-worker"]
    service = Service(args, env, log)

    def printed() -> re.Match[str] | None:
        assert service.alive(), "lore console exited:\n" + service.output()[-3000:]
        return re.search(r"Lore console: (http://127\.0\.0\.1:\d+)/console/\?token=(\S+)", service.output())

    try:
        found = wait_until(printed, timeout=90, what="lore console's address", interval=0.2)
        url = found.group(1)
        wait_until(lambda: httpx.get(url + "/healthz", timeout=2).status_code == 200, timeout=60, what="console up")
    except BaseException:
        service.stop()
        raise
    return Console(url=url, token=found.group(2), service=service)


@pytest.fixture
def console(kb: Settings, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path) -> Iterator[Console]:  # noqa: F811
    fake_openai.responder = echo_context
    running = start_console(console_env(fake_slack, fake_openai), tmp_path / "console.log")
    try:
        yield running
    finally:
        output = running.service.stop()
    assert running.token not in output.replace(f"?token={running.token}", ""), "the run token was logged"
    assert "lore_pat_" not in output
    assert "Traceback" not in output, output[-3000:]
