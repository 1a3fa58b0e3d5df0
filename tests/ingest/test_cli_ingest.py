"""`lore ingest` as a user runs it: exactly one JSON document on stdout, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lore.config import Settings
from tests.ingest.helpers import rows

LORE = [sys.executable, "-m", "lore.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LORE, *args], capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_json_output_and_exit_code_when_one_source_fails(db: Settings, tmp_path: Path) -> None:
    (tmp_path / "on-call.md").write_text("# On-call\n\nThe on-call phone number is +49 30 1234 5678.\n")
    (tmp_path / "broken.md").write_bytes(b"\xff\xfe\x00\x01")
    result = _run("ingest", "--json", "--channel", "C1", str(tmp_path))
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout) == {
        "documents_added": 1,
        "documents_updated": 0,
        "documents_unchanged": 0,
        "documents_deleted": 0,
        "chunks_added": 1,
        "errors": [{"source": str(tmp_path / "broken.md"), "error": "binary file (contains NUL bytes), not text"}],
    }
    assert rows(db, "SELECT acl FROM chunks") == [(["C1"],)]


def test_usage_errors_exit_2() -> None:
    assert _run("ingest").returncode == 2
    assert _run("ingest", "--depth", "-1", "x").returncode == 2
    waiting = _run("ingest", "--wait", "x")
    assert waiting.returncode == 2 and "--wait goes with --queue" in waiting.stderr
