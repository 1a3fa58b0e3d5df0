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

    An exception from `check` counts as "not yet" (a service still coming up) and is chained to the timeout; an
    AssertionError from it fails at once.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except AssertionError:
            raise  # the check's own verdict (e.g. "the server exited"): waiting longer cannot change it
        except Exception as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from last_error
        time.sleep(interval)
