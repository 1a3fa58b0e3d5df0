"""The Celery app: configuration that keeps work from being lost, and a real task through Redis."""

from __future__ import annotations

from lore.config import Settings
from workers.app import FEEDBACK_QUEUE, INGEST_QUEUE, app


def test_celery_is_configured_for_reliability() -> None:
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.task_serializer == "json"
    assert conf.broker_url.startswith("redis://")
    assert {q.name for q in conf.task_queues} == {INGEST_QUEUE, FEEDBACK_QUEUE}


def test_ping_task_runs_on_a_real_worker(celery_worker: object, db: Settings) -> None:
    from workers.tasks import ping

    result = ping.apply_async(queue=INGEST_QUEUE).get(timeout=60)
    assert result["ok"] is True
    assert result["postgres_version"].startswith("18")


def test_abandoned_tasks_are_redelivered_soon_after_the_visibility_timeout() -> None:
    """kombu's default sweep for tasks whose worker vanished runs every 100 s: far longer than a short
    visibility timeout, so a broker restart left votes undelivered for minutes (seen in CI)."""
    from lore.config import Settings
    from workers.app import configure, create_celery

    for visibility in (5, 3600):
        settings = Settings(LORE_CELERY_VISIBILITY_TIMEOUT=str(visibility), _env_file=None)  # type: ignore[call-arg]
        options = configure(create_celery(settings), settings).conf.broker_transport_options
        sweep = options["unacked_restore_interval"] * options["unacked_restore_throttle"]
        assert options["visibility_timeout"] == visibility
        assert sweep <= min(10, visibility)
