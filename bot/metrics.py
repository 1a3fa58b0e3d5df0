"""Prometheus metrics of the Slack bot: events received, answers, answer latency, errors."""

from __future__ import annotations

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
