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


def test_every_task_the_bot_sends_is_registered_under_that_name() -> None:
    """The bot sends by name (it never imports task code): each name must be a task the worker has."""
    import workers.tasks  # noqa: F401 - the worker's task modules, as `lore worker` imports them
    from bot import worker_client
    from workers.ingest_jobs import INGEST_BATCH

    public = {k: v for k, v in vars(worker_client).items() if k.isupper() and not k.startswith("_")}
    sent = [v for v in public.values() if isinstance(v, str) and v.startswith("workers.")]
    assert len(sent) == 8
    for name in [*sent, INGEST_BATCH]:
        module = name.rsplit(".", 1)[0]
        assert app.tasks[name].name == name and app.tasks[name].__module__ == module, name


def test_tasks_queued_under_their_former_names_still_run(celery_worker: object, db: Settings) -> None:
    """Messages already queued as `workers.tasks.<function>` are routed to the same queue and run the same task."""
    from harness.polling import wait_until
    from tests.feedback.helpers import add_answer, rand_vec, votes
    from workers.app import FORMER_NAMES

    router = app.amqp.router
    for former, current in FORMER_NAMES.items():
        assert app.tasks[former] is app.tasks[current]
        assert router.route({}, former)["queue"].name == router.route({}, current)["queue"].name, former

    answer_id = add_answer(db, embedding=rand_vec(0), question="q", channel_id="C1", message_ts="50.1")
    app.send_task(
        "workers.tasks.record_vote", kwargs={"answer_id": answer_id, "user_id": "U1", "value": 1, "via": "button"}
    )
    wait_until(lambda: votes(db) == {(answer_id, "U1"): 1}, timeout=60, what="the vote sent under its former name")
    synced = app.send_task("workers.tasks.sync_slack_channels").get(timeout=60)
    assert synced == {"channels": 0, "skipped": "SLACK_BOT_TOKEN is not set"}
