"""No secret in any log or export: every Lore process runs with recognisable fake credentials (xoxb-CANARY…,
xapp-CANARY…, a CANARY signing secret, an sk-CANARY… OpenAI key pointed at the fake OpenAI server), at DEBUG,
through its normal work and its failures; then everything they printed and every export file is scanned.

In-process flows (the bot, the agent, ingest) are covered by the scan of every log record of this package's
tests in tests/reliability/conftest.py.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from harness import procs
from harness.canaries import APP_TOKEN, BOT_TOKEN, OPENAI_KEY, SIGNING_SECRET
from harness.openai_server import FakeOpenAI
from harness.slack_api import BOT_USER_ID, FakeSlack
from harness.slack_signing import SlackSender, app_mention, event_envelope
from lore.config import Settings
from lore.db import raw_connection
from tests.reliability.conftest import find_secrets


def _lore(env: dict[str, str], *args: str, code: int | None = 0) -> str:
    done = subprocess.run([*procs.LORE, *args], env=env, capture_output=True, text=True, timeout=180)
    if code is not None:
        assert done.returncode == code, (args, done.stdout[-1500:], done.stderr[-1500:])
    return done.stdout + done.stderr


def test_no_secret_in_any_process_output_or_export(
    db: Settings, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path, redis_url: str
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "deploy.md").write_text("# Deploy\n\nProduction deploys run with `make deploy` from main.\n")
    (docs / "oncall.md").write_text("# On-call\n\nThe on-call engineer hands over on Mondays at 10:00.\n")
    queued_dir = tmp_path / "queued"
    queued_dir.mkdir()
    (queued_dir / "vpn.md").write_text("# VPN\n\nThe VPN uses WireGuard profiles from the IT portal.\n")
    redis = procs.RedisServer(tmp_path / "redis").start()
    env = procs.clean_env(
        SLACK_API_URL=fake_slack.url, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN=APP_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET, OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=fake_openai.url,
        LORE_CHAT_MODEL="fake-model", LORE_LOG_LEVEL="DEBUG", REDIS_URL=redis.url,
        LORE_CELERY_VISIBILITY_TIMEOUT="5",
    )  # fmt: skip
    outputs: dict[str, str] = {}
    services: list[procs.Service] = []
    try:
        outputs["ingest"] = _lore(env, "ingest", "--json", str(docs), str(tmp_path / "missing.md"), code=1)
        fake_openai.reply("Deploys run with make deploy from main [1].")
        outputs["ask"] = _lore(env, "ask", "--json", "How do I deploy to production?")
        fake_openai.fail(500, times=2)
        outputs["ask-llm-down"] = _lore(env, "ask", "--json", "How do I deploy to production?", code=None)
        outputs["search"] = _lore(env, "search", "--json", "deploy")
        outputs["status"] = _lore(env, "status", "--json", code=None)
        worker = procs.worker(env, tmp_path / "worker.log")
        services.append(worker)
        outputs["ingest-queue"] = _lore(env, "ingest", "--queue", "--json", str(queued_dir))
        serve, url = procs.serve_http(env, tmp_path / "serve.log")
        services.append(serve)
        sender = SlackSender(url, SIGNING_SECRET)
        fake_openai.reply("Hand over on Mondays at 10:00 [1].")
        assert sender.event(app_mention(f"<@{BOT_USER_ID}> when is the on-call handover?", ts="1695000000.000100"))
        body = json.dumps(event_envelope(app_mention("forged", ts="1695000001.000100"))).encode()
        assert sender.post_raw(body, "application/json", secret="guessed").status_code == 401
        procs.wait_until(lambda: "feedback_buttons" in json.dumps([c.params for c in fake_slack.calls]), timeout=90,
                         what="the first answer")  # fmt: skip
        fake_openai.fail(500, times=2)
        sender.event(app_mention(f"<@{BOT_USER_ID}> How do I deploy to production?", ts="1695000002.000100"))
        procs.wait_until(
            lambda: "Sorry" in json.dumps([c.params for c in fake_slack.calls]),
            timeout=60, what="the apology",
        )  # fmt: skip

        def queued_done() -> bool:
            with raw_connection(db) as conn:
                return conn.execute("SELECT status FROM ingest_jobs").fetchone()[0] == "done"

        procs.wait_until(queued_done, timeout=90, what="the queued ingest", interval=0.5)
        sender.close()
        time.sleep(0.5)
        with raw_connection(db) as conn:  # the exports read answers: give them a channel and a vote
            conn.execute("UPDATE answers SET channel_id = 'C0GENERAL', private = false")
            conn.execute("INSERT INTO votes (answer_id, user_id, value) SELECT id, 'U1', 1 FROM answers")
        for fmt in ("trl-sft", "trl-dpo", "trl-kto", "openai-sft", "openai-dpo"):
            outputs[f"export-{fmt}"] = _lore(env, "feedback", "export", "--format", fmt, "-o", str(tmp_path / fmt))
            outputs[f"export-file-{fmt}"] = (tmp_path / fmt).read_text()
        outputs["stats"] = _lore(env, "feedback", "stats", "--json")
    finally:
        for service in services:
            outputs[service.log.name] = service.stop()
        redis.__exit__()
    assert "level=debug" in outputs["serve.log"]  # the processes really logged at DEBUG
    assert fake_openai.completions[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"  # the key was in use
    assert json.loads(outputs["export-file-trl-sft"].splitlines()[0])  # exports hold real rows
    hits = {name: find_secrets(text) for name, text in outputs.items() if find_secrets(text)}
    assert hits == {}
    scanned = sum(len(t) for t in outputs.values())
    print(f"\n{len(outputs)} outputs and exports, {scanned} characters scanned: 0 secrets")
