"""What every CLI command shares: settings loading, JSON output, clean error exits."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click
from pydantic import ValidationError

from lore.config import Settings, describe_validation_error, get_settings

# Exit codes: 0 success, 1 the work partly or wholly failed, 2 usage or configuration error.
EXIT_FAILED = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"lore: error: {message}", err=True)
    sys.exit(code)


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        fail(describe_validation_error(exc), EXIT_USAGE)


def emit_json(document: Any) -> None:
    """Print exactly one JSON document on stdout."""
    click.echo(json.dumps(document, ensure_ascii=False, default=str))
