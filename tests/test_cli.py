"""The `lore` command as a user runs it: version, help, db url, status."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from lore import __version__
from lore.config import Settings
from lore.db import database_url

LORE = [sys.executable, "-m", "lore.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LORE, *args], capture_output=True, text=True, timeout=120, env=env or dict(os.environ))


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"lore, version {__version__}"
    out = run("--help").stdout
    for command in ("db", "status", "worker"):
        assert command in out


def test_db_url_is_the_embedded_server(migrated: Settings) -> None:
    result = run("db", "url")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == database_url(migrated)
    as_json = run("db", "url", "--json")
    assert json.loads(as_json.stdout) == {"url": database_url(migrated), "embedded": True}


def test_status_json_reports_pgvector_counts_and_redis(db: Settings) -> None:
    result = run("status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["database"]["pgvector_installed"] >= "0.8"
    assert report["migrated"] is True
    assert report["tables"]["documents"] == 0 and "votes" in report["tables"]
    assert report["redis"]["reachable"] is True
    assert report["chat_model"] is None


def test_status_human_output(db: Settings) -> None:
    result = run("status")
    assert result.returncode == 0, result.stderr
    assert "pgvector   0.8" in result.stdout
    assert "reachable" in result.stdout
