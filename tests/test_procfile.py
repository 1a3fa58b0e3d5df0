"""The Procfile runs as written: honcho starts web, worker and beat, and each one does its job."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

from harness.slack_api import FakeSlack
from lore.config import Settings

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROCFILE_REDIS_URL = "redis://127.0.0.1:6379/7"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_procfile_lines() -> None:
    lines = dict(line.split(":", 1) for line in (REPO / "Procfile").read_text().splitlines() if line.strip())
    assert set(lines) == {"web", "worker", "beat"}
    assert all(value.strip().startswith("lore ") for value in lines.values())


def test_honcho_starts_web_worker_and_beat(migrated: Settings, fake_slack: FakeSlack) -> None:
    redis.Redis.from_url(PROCFILE_REDIS_URL).flushdb()
    port = _free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "REDIS_URL": PROCFILE_REDIS_URL,
        "SLACK_BOT_TOKEN": "xoxb-procfile-test",
        "SLACK_SIGNING_SECRET": "procfile-signing-secret",
        "SLACK_API_URL": fake_slack.url,
        "PYTHONUNBUFFERED": "1",
    }
    log_path = migrated.home / "honcho.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(BIN / "honcho"), "start", "-f", str(REPO / "Procfile"), "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        healthy = False
        while time.monotonic() < deadline and not healthy:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.5)
        assert healthy, f"web did not answer /healthz on {port}:\n{log_path.read_text()[-3000:]}"

        from celery import Celery

        client = Celery("probe", broker=PROCFILE_REDIS_URL, backend=PROCFILE_REDIS_URL)
        client.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")
        result = client.send_task("workers.tasks.ping", queue="ingest").get(timeout=90)
        assert result["ok"] is True, result

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "beat: Starting" not in log_path.read_text():
            time.sleep(0.5)
        assert "beat: Starting" in log_path.read_text(), log_path.read_text()[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
