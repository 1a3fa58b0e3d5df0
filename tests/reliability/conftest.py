"""Fixtures of the reliability suite: the fake secrets to look for, a scan of every log record for them, and the
bot, fake Slack and fake OpenAI fixtures of the other parts (reused, not rewritten)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from harness import canaries
from tests.bot.conftest import SECRET as BOT_TEST_SECRET
from tests.bot.conftest import answerer, bot, bot_settings, start_bot  # noqa: F401 - fixtures reused here
from tests.fakes.fixtures import fake_openai  # noqa: F401 - fixture reused here
from tests.ingest.test_web import site  # noqa: F401 - the local web server of the ingest tests

SECRETS = (*canaries.SECRETS, BOT_TEST_SECRET, "xoxb-test-token")


def find_secrets(text: str) -> list[str]:
    """The fake secrets of this suite (the canaries and the bot tests' own) that occur in `text`."""
    return canaries.find_secrets(text, SECRETS)


@dataclass
class _LogScan(logging.Handler):
    """Receives every log record of the session and keeps those that carry a secret (unredacted text)."""

    records: int = 0
    hits: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        logging.Handler.__init__(self, level=logging.DEBUG)

    def __hash__(self) -> int:
        return id(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        try:
            text = record.getMessage()
        except Exception:
            text = f"{record.msg} {record.args}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "".join(traceback.format_exception(*record.exc_info))
        for secret in find_secrets(text):
            self.hits.append(f"{record.name}: {secret} in {text[:300]!r}")


SCAN = _LogScan()


@pytest.fixture(scope="session", autouse=True)
def log_scan() -> Iterator[_LogScan]:
    """Every record at INFO and above (DEBUG for Lore's own loggers) passes through the scan."""
    root = logging.getLogger()
    previous = root.level
    root.addHandler(SCAN)
    root.setLevel(logging.INFO)
    for name in ("lore", "bot", "workers", "ingest"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield SCAN
    root.removeHandler(SCAN)
    root.setLevel(previous)


@pytest.fixture(autouse=True)
def no_secret_in_logs(log_scan: _LogScan) -> Iterator[None]:
    before = len(log_scan.hits)
    yield
    leaked = log_scan.hits[before:]
    assert not leaked, "secrets in log records:\n" + "\n".join(leaked[:5])


def pytest_terminal_summary(terminalreporter: object) -> None:
    if SCAN.records:
        write = getattr(terminalreporter, "write_line")  # noqa: B009
        write(f"reliability: {SCAN.records} log records scanned for secrets, {len(SCAN.hits)} hits")
