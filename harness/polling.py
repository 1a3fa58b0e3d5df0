"""Waiting for something another thread or process does: the one polling loop of the tests and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T], *, timeout: float = 10.0, what: str = "the condition", interval: float = 0.02
) -> T:
    """Call `check` until it returns something truthy and return that; AssertionError after `timeout` seconds.

    An exception from `check` counts as "not yet" (a service still coming up), and is chained to the timeout.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
        except Exception as exc:
            last_error, value = exc, None  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from last_error
        time.sleep(interval)
