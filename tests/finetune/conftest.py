"""Fixtures of the embedder fine-tuning tests: every test leaves this process's active embedder as it found it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from lore.config import Settings
from lore.embedder_registry import models_dir


@pytest.fixture(autouse=True)
def fresh_embedder_state(settings: Settings) -> Iterator[None]:
    """No model directory and no cached embedder state survive a test (the `db` fixture empties the tables)."""
    from lore import embedder_registry

    yield
    embedder_registry._actives.clear()
    shutil.rmtree(models_dir(settings), ignore_errors=True)
