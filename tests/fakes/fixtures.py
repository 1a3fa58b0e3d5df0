"""Pytest fixtures around the harness's fake servers: each started for one test and stopped after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.openai_server import FakeOpenAI
from harness.slack_api import FakeSlack


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started FakeOpenAI, stopped after the test."""
    with FakeOpenAI() as fake:
        yield fake
