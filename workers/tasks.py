"""The worker's task modules (thin tasks that take ids and small values and call ingest/ and lore/), each task
registered under its former name too, and `ping`."""

from __future__ import annotations

from typing import Any

from lore.config import get_settings
from lore.db import check_database
from workers.app import FORMER_NAMES, app


@app.task(name="workers.tasks.ping")
def ping() -> dict[str, Any]:
    """Round trip through broker, worker and database: used by health checks and tests."""
    info = check_database(get_settings())
    return {"ok": True, "postgres_version": info["postgres_version"]}


# Importing the task modules registers their tasks with the app.
from workers import feedback_tasks, ingest_tasks, reembed_tasks  # noqa: E402, F401

for _former, _current in FORMER_NAMES.items():
    app.tasks[_former] = app.tasks[_current]
