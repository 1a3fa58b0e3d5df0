"""The plan an answer shows while it streams (task_update chunks of chat.startStream/appendStream/stopStream):
searching, the passages read, writing."""

from __future__ import annotations

from typing import Any

from lore.types import Answer

SEARCH, WRITE = "lore_search", "lore_write"


def _task(task_id: str, title: str, status: str, **extra: str) -> dict[str, Any]:
    return {"type": "task_update", "id": task_id, "title": title, "status": status, **extra}


def searching() -> list[dict[str, Any]]:
    return [
        {"type": "plan_update", "title": "Answering from your docs"},
        _task(SEARCH, "Searching the knowledge base", "in_progress"),
    ]


def writing() -> list[dict[str, Any]]:
    # The model writes only once retrieval is over.
    return [
        _task(SEARCH, "Searching the knowledge base", "complete"),
        _task(WRITE, "Writing the answer", "in_progress"),
    ]


def done(answer: Answer) -> list[dict[str, Any]]:
    read = len(answer.chunk_ids)
    passages = f"{read} passage{'s' if read != 1 else ''} read"
    cited = f", {len(answer.citations)} cited" if answer.citations else ""
    return [
        _task(SEARCH, "Searching the knowledge base", "complete", output=passages + cited),
        _task(WRITE, "Writing the answer", "complete"),
    ]


def failed() -> list[dict[str, Any]]:
    return [_task(WRITE, "Writing the answer", "error")]
