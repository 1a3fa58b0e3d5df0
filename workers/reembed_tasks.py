"""Embedder switch tasks: re-embed the knowledge base with a fine-tuned embedder and swap to it
(lore.embedder_switch), and the later sweep of answers recorded during the swap.

Both are idempotent (a model already active is a no-op; the sweep recomputes the same vectors), so a
redelivery after a worker died mid-task finishes the job.
"""

from __future__ import annotations

from typing import Any

from lore.config import get_settings
from lore.embedder_switch import sweep_answer_questions as sweep
from lore.embedder_switch import switch_embedder
from workers.app import app

_RELIABLE: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True}


@app.task(name="workers.reembed_tasks.reembed_knowledge_base", **_RELIABLE)
def reembed_knowledge_base(model: str) -> dict[str, Any]:
    """Switch the knowledge base to `model` (a name from embedder_models)."""
    return switch_embedder(get_settings(), model)


@app.task(name="workers.reembed_tasks.sweep_answer_questions", **_RELIABLE)
def sweep_answer_questions(after_answer: int) -> int:
    """Embed again the questions of answers recorded after `after_answer` with the active embedder."""
    return sweep(get_settings(), after_answer)
