"""What each process imports at start: torch and sentence-transformers nowhere but training; the embedder and
the agent stack only where a command needs them (checked with `python -X importtime` on real subprocesses, and
on a running Celery worker's memory map)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from harness.polling import wait_until
from lore.config import Settings
from lore.db import get_engine
from lore.models import TABLES
from tests.conftest import REPO

TORCH_STACK = ("torch", "transformers", "sentence_transformers")
EMBEDDER_AND_AGENT = (
    *("lore.embeddings", "lore.onnx_embedder", "onnxruntime", "tokenizers"),
    *("lore.agent", "lore.search", "lore.llm", "langchain", "openai"),
)
_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", re.MULTILINE)


def imported_by(*args: str) -> set[str]:
    """The modules `lore ARGS` imports, as `python -X importtime` reports them (the command must succeed)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "lore.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return set(_IMPORTED.findall(result.stderr))


def among(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The modules that are, or are inside, one of `packages` (langchain matches langchain_core too)."""
    return sorted(m for m in modules if any(m == p or m.startswith((f"{p}.", f"{p}_")) for p in packages))


@pytest.fixture(scope="module")
def handbook(migrated: Settings) -> Iterator[Settings]:
    from ingest.pipeline import ingest_sources

    with get_engine(migrated).begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in TABLES) + " RESTART IDENTITY CASCADE"))
    report = ingest_sources(migrated, [str(REPO / "examples")])
    assert report.as_json()["chunks_added"] > 0 and not report.as_json()["errors"]
    yield migrated


def test_help_loads_neither_the_embedder_nor_the_agent_stack() -> None:
    modules = imported_by("--help")
    assert "click" in modules  # the parse found the imports
    assert among(modules, TORCH_STACK + EMBEDDER_AND_AGENT) == []


@pytest.mark.parametrize("command", [("status", "--json"), ("feedback", "stats", "--json")])
def test_status_and_feedback_stats_load_neither_the_embedder_nor_the_agent_stack(
    handbook: Settings, command: tuple[str, ...]
) -> None:
    modules = imported_by(*command)
    assert "psycopg" in modules
    assert among(modules, TORCH_STACK + EMBEDDER_AND_AGENT) == []


@pytest.mark.parametrize(
    "command", [("search", "how do I roll back a deploy?", "--json"), ("ask", "how do I roll back a deploy?", "--json")]
)
def test_search_and_search_only_ask_load_no_torch_nor_langchain(handbook: Settings, command: tuple[str, ...]) -> None:
    modules = imported_by(*command)
    assert "onnxruntime" in modules and "lore.onnx_embedder" in modules  # the query was embedded, on ONNX Runtime
    assert among(modules, TORCH_STACK) == []
    # Without a chat model, answering is search-only: LangChain (over a second to import) is never loaded.
    assert among(modules, ("langchain", "langsmith", "openai")) == []


def _mapped_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_a_celery_worker_starts_without_torch(handbook: Settings) -> None:
    queue = f"lore-test-imports-{uuid.uuid4().hex[:8]}"  # a queue of its own: it takes no other test's tasks
    worker = subprocess.Popen(
        [sys.executable, "-m", "lore.cli", "worker", "-c", "1", "-Q", queue],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "LORE_LOG_LEVEL": "INFO"},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(worker.stderr or []), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any(" ready." in line for line in lines) or worker.poll() is not None, timeout=120)
        assert worker.poll() is None, "".join(lines)[-3000:]
        time.sleep(0.5)  # its pool process has forked
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
        for pid in [worker.pid, *map(int, children)]:
            maps = _mapped_libraries(pid)
            assert "libtorch" not in maps, f"process {pid} of the worker has torch loaded"
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
