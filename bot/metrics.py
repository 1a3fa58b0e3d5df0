"""Prometheus metrics of the Slack bot: events received, answers, answer latency, errors."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

# A registry of our own: the /metrics page shows the bot's figures, and tests can create many apps per process.
REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter("lore_slack_events", "Slack requests received, by kind", ["kind"], registry=REGISTRY)
DUPLICATES = Counter("lore_slack_duplicates", "Slack deliveries skipped as already handled", registry=REGISTRY)
ANSWERS = Counter(
    "lore_answers", "Answers posted to Slack, by surface and outcome", ["surface", "outcome"], registry=REGISTRY
)
ANSWER_LATENCY = Histogram(
    "lore_answer_latency_seconds",
    "From the start of the work on a question to the posted answer",
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
    registry=REGISTRY,
)
ERRORS = Counter("lore_errors", "Failures in the bot, by where they happened", ["where"], registry=REGISTRY)

# In answer processes (bot/pool.py) this is a multiprocessing queue: counts travel to the serving process,
# whose /metrics is the one Prometheus scrapes.
_forward: Any = None


def forward_to(queue: Any) -> None:
    global _forward
    _forward = queue


def record_answer(outcome: str, seconds: float | None = None, *, surface: str = "slack") -> None:
    if _forward is not None:
        _forward.put(("answer", surface, outcome, seconds))
        return
    ANSWERS.labels(surface, outcome).inc()
    if seconds is not None:
        ANSWER_LATENCY.observe(seconds)


def record_error(where: str) -> None:
    if _forward is not None:
        _forward.put(("error", where))
        return
    ERRORS.labels(where).inc()


def apply(event: tuple[Any, ...]) -> None:
    """Count an event forwarded by an answer process."""
    if event[0] == "answer":
        record_answer(event[2], event[3], surface=event[1])
    elif event[0] == "error":
        record_error(event[1])
