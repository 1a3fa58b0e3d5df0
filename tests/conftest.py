"""Shared fixtures: a throwaway embedded PostgreSQL+pgvector, a reserved Redis database, a real Celery worker.

The environment is set here, before any Lore module is imported, so every process the tests start
(CLI subprocesses, `lore serve`, workers) sees the same throwaway LORE_HOME and Redis database.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

TEST_HOME = Path(tempfile.mkdtemp(prefix="lore-test-"))


def _reserve_redis_database(*, explicit: bool = True) -> str:
    """A Redis database of this process's own: 14, or the next one down that no other test run holds.

    Two suites on one Redis database would share a Celery broker, and each one's workers would take the
    other's tasks; so would the processes of one suite run by pytest-xdist. A process claims its database
    (harness.redis_claims: expiring after an hour, in case the run is killed) and gives it back when it exits.
    LORE_TEST_REDIS_URL chooses the first process's main database explicitly; the others claim theirs.
    """
    chosen = os.environ.get("LORE_TEST_REDIS_URL", "")
    if chosen and explicit and os.environ.get("PYTEST_XDIST_WORKER", "gw0") == "gw0":
        return chosen
    import redis

    from harness.redis_claims import claim_database

    taken = chosen.rstrip("/").rsplit("/", 1)[-1] if chosen else ""
    try:
        numbers = (n for n in range(14, 0, -1) if str(n) != taken)
        number = claim_database(numbers, f"{os.getpid()}@{TEST_HOME}", ttl_s=3600)
    except redis.RedisError:
        return "redis://127.0.0.1:6379/14"  # not reachable: the redis_url fixture says so, loudly
    if number is None:
        # Sharing a database would let another run's worker take this run's tasks: never fall back to one silently.
        raise RuntimeError(
            "no Redis database of 1-14 is free for this test process: other runs hold the keys lore:test-run:N in "
            "database 0 (a test run's key expires an hour after it started); set LORE_TEST_REDIS_URL or "
            "PYTEST_WORKERS=0"
        )
    return f"redis://127.0.0.1:6379/{number}"


TEST_REDIS_URL = _reserve_redis_database()
# The RabbitMQ the amqp:// broker test uses (read before the LORE_ variables are cleared below).
TEST_AMQP_URL = os.environ.get("LORE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")

for _name in list(os.environ):
    if _name.startswith(("SLACK_", "OPENAI_", "LORE_")) or _name == "DATABASE_URL":
        del os.environ[_name]
os.environ.update(
    {
        "LORE_HOME": str(TEST_HOME),
        "REDIS_URL": TEST_REDIS_URL,
        "SLACK_API_URL": "http://127.0.0.1:9/api/",  # nothing listens: a test that forgets the fake fails
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
)

from lore.config import Settings, get_settings  # noqa: E402
from lore.db import database_url, dispose_engines, get_engine, stop_embedded  # noqa: E402
from lore.models import TABLES  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _require_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        pytest.exit(f"Redis is required at {url} and is not reachable ({exc}); start redis-server", returncode=3)


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    get_settings.cache_clear()
    yield get_settings()


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> Iterator[Settings]:
    """The embedded server under the throwaway LORE_HOME, migrated to head; stopped and removed at the end."""
    from lore.migrations import upgrade_database

    upgrade_database(settings)
    yield settings
    dispose_engines()
    stop_embedded(settings)
    shutil.rmtree(TEST_HOME, ignore_errors=True)


@pytest.fixture
def db(migrated: Settings) -> Settings:
    """A migrated, empty database: every table truncated before the test."""
    from sqlalchemy import text

    with get_engine(migrated).begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in TABLES) + " RESTART IDENTITY CASCADE"))
    # The process's copy of the feedback memory describes the previous test's rows (ids restart): drop it.
    from lore import feedback_memory

    feedback_memory._indexes.clear()
    # Likewise the frequent words search last read from the previous test's statistics.
    from lore import search

    search._frequent.clear()
    return migrated


@pytest.fixture(scope="session")
def redis_url() -> str:
    _require_redis(TEST_REDIS_URL)
    import redis

    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def spare_redis_url(redis_url: str) -> str:
    """A second Redis database of this run's own (reserved as the first), emptied: for Celery processes that must
    not share a broker with the session's worker, which would take their tasks."""
    url = _reserve_redis_database(explicit=False)
    assert url != redis_url, "no second Redis database is free for this run"
    import redis

    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="session")
def celery_worker_session(migrated: Settings, redis_url: str) -> Iterator[object]:
    """A real Celery worker thread on the test Redis database, consuming every Lore queue."""
    from celery.contrib.testing.worker import start_worker

    from workers.app import FEEDBACK_QUEUE, INGEST_QUEUE, app

    database_url(migrated)
    # Celery's embedded worker configures the root logger for its own log level (ERROR) on start, in this process:
    # put it back, or a later test of a warning (caplog) sees nothing, depending on which file ran first.
    root_level = logging.getLogger().level
    with start_worker(
        app,
        pool="threads",
        concurrency=2,
        queues=[INGEST_QUEUE, FEEDBACK_QUEUE],
        perform_ping_check=False,
        shutdown_timeout=30,
    ) as worker:
        logging.getLogger().setLevel(root_level)
        yield worker


@pytest.fixture
def celery_worker(celery_worker_session: object, db: Settings) -> object:
    return celery_worker_session


# Fixtures of the local fakes, available to every test.
from tests.fakes.fixtures import fake_slack  # noqa: E402, F401
