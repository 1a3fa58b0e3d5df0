"""The Procfile runs as written: honcho starts web, worker and beat, and each one does its job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from harness.local_server import free_port
from harness.polling import wait_until
from harness.slack_api import FakeSlack
from lore.config import Settings

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_procfile_lines() -> None:
    lines = dict(line.split(":", 1) for line in (REPO / "Procfile").read_text().splitlines() if line.strip())
    assert set(lines) == {"web", "worker", "beat"}
    assert all(value.strip().startswith("lore ") for value in lines.values())


def test_honcho_starts_web_worker_and_beat(migrated: Settings, fake_slack: FakeSlack, spare_redis_url: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "REDIS_URL": spare_redis_url,
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
        healthz = f"http://127.0.0.1:{port}/healthz"
        try:
            wait_until(lambda: httpx.get(healthz, timeout=2).status_code == 200, timeout=90, interval=0.5)
        except AssertionError:
            raise AssertionError(f"web did not answer /healthz on {port}:\n{log_path.read_text()[-3000:]}") from None

        from celery import Celery

        client = Celery("probe", broker=spare_redis_url, backend=spare_redis_url)
        client.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")
        sent = client.send_task("workers.tasks.ping", queue="ingest")
        result = sent.get(timeout=90)
        assert result["ok"] is True, result
        assert f"workers.tasks.ping[{sent.id}]" in log_path.read_text()  # the Procfile's worker ran it

        try:
            wait_until(lambda: "beat: Starting" in log_path.read_text(), timeout=60, interval=0.5)
        except AssertionError:
            raise AssertionError(log_path.read_text()[-3000:]) from None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
