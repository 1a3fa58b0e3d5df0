"""`lore ingest --queue` with real worker processes on a private Redis: a worker SIGKILLed in the middle of
a batch (some documents already written) leaves no duplicates, and a second worker completes the job. And the
same queue on RabbitMQ (an amqp:// REDIS_URL), which the architecture allows as the broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.local_server import free_port
from harness.polling import wait_until
from ingest.chunking import chunk_document
from ingest.document import RawDocument
from ingest.parsers import parse_markdown
from lore.config import Settings
from tests.conftest import TEST_AMQP_URL
from tests.ingest.helpers import rows

LORE = [sys.executable, "-m", "lore.cli"]
FILES = 9
BATCH_DOCS = 7


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test's own, so no other worker (e.g. the session's worker thread) takes its tasks."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=1)
    try:
        wait_until(client.ping, timeout=5, what="redis-server")
    except AssertionError:
        server.kill()
        raise
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(10)


@pytest.fixture
def rabbitmq() -> str:
    """The machine's RabbitMQ, its ingest queue emptied (a test run's leftovers would be taken first)."""
    from kombu import Connection

    with Connection(TEST_AMQP_URL, connect_timeout=3) as conn:
        try:
            conn.connect()
        except Exception as exc:  # kombu wraps the socket error in its own
            pytest.fail(f"RabbitMQ at {TEST_AMQP_URL} is not reachable ({exc}): start it or set LORE_TEST_AMQP_URL")
        channel = conn.channel()
        channel.queue_declare("ingest", durable=True, auto_delete=False)  # as Celery declares it
        channel.queue_purge("ingest")
    return TEST_AMQP_URL


def _corpus(root: Path) -> dict[str, int]:
    """Files of two sections each; returns file uri -> expected number of chunks."""
    expected = {}
    for n in range(FILES):
        sections = []
        for part in range(2):
            words = " ".join(f"svc{n}p{part}w{i}" for i in range(110))
            sections.append(f"## Part {part}\n\nService {n} part {part} facts: {words}.\n")
        path = root / f"f{n:02d}.md"
        path.write_text(f"# Service {n}\n\n" + "\n".join(sections))
        raw = RawDocument(
            uri=path.as_uri(), source=str(path), source_kind="file", data=path.read_bytes(), parse=parse_markdown
        )
        expected[path.as_uri()] = len(chunk_document(parse_markdown(raw), chunk_words=160))
    return expected


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    args = [*LORE, "worker", "-c", "1", "-Q", "ingest", "--without-mingle", "--without-gossip"]
    return subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _chunks_per_document(settings: Settings) -> dict[str, int]:
    sql = "SELECT d.uri, count(c.id) FROM documents d LEFT JOIN chunks c ON c.document_id = d.id GROUP BY d.uri"
    return {str(uri): int(count) for uri, count in rows(settings, sql)}


def _batch0(settings: Settings) -> tuple[bool, int]:
    done = rows(settings, "SELECT done FROM ingest_batches WHERE batch_no = 0")[0][0]
    return bool(done), int(rows(settings, "SELECT count(*) FROM documents")[0][0])


def test_worker_killed_mid_batch_then_a_second_worker_completes_the_job(
    db: Settings, private_redis: str, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    expected = _corpus(corpus)
    env = {
        **os.environ,
        "REDIS_URL": private_redis,
        "LORE_CELERY_VISIBILITY_TIMEOUT": "5",
        "LORE_INGEST_BATCH_DOCS": str(BATCH_DOCS),
        # Small embedding groups, so a batch is written in several transactions and can be killed between them.
        "LORE_EMBED_BATCH": "1",
    }
    queued = subprocess.run(
        [*LORE, "ingest", "--queue", "--json", str(corpus)], env=env, capture_output=True, timeout=60
    )
    assert queued.returncode == 0, queued.stderr
    job = json.loads(queued.stdout)
    assert job["status"] == "queued" and job["errors"] == []  # the counts so far, in the shape of `ingest --json`
    assert (job["documents_added"], job["chunks_added"], job["batches_done"], job["batches_total"]) == (0, 0, 0, 2)
    assert rows(db, "SELECT batches_total, status FROM ingest_jobs WHERE id = %s", job["job_id"]) == [(2, "queued")]

    first = _worker(env, tmp_path / "worker1.log")
    started_at = None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            done, documents = _batch0(db)
            assert not done, "the first batch finished before the worker could be killed mid-batch"
            if started_at is None and rows(db, "SELECT status FROM ingest_jobs")[0][0] == "running":
                started_at = time.monotonic()  # the task was delivered no later than this
            if documents >= 1:
                break
            time.sleep(0.005)
        else:
            pytest.fail("the first worker wrote nothing: " + (tmp_path / "worker1.log").read_text()[-2000:])
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    done, written = _batch0(db)
    assert not done and 1 <= written < BATCH_DOCS  # killed in the middle: part of the batch is in, not marked done

    # Redis hands the unacknowledged task to another worker once the visibility timeout (5 s) has passed
    # since delivery; the second worker looks for such tasks when it starts.
    assert started_at is not None
    time.sleep(max(0.0, started_at + 5.5 - time.monotonic()))
    second = _worker(env, tmp_path / "worker2.log")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = rows(db, "SELECT status FROM ingest_jobs WHERE id = %s", job["job_id"])[0][0]
            if status == "done":
                break
            time.sleep(0.2)
        else:
            pytest.fail("job not done: " + (tmp_path / "worker2.log").read_text()[-3000:])
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(30)

    assert _chunks_per_document(db) == expected
    total, distinct = rows(db, "SELECT count(*), count(DISTINCT text) FROM chunks")[0]
    assert total == distinct == sum(expected.values())
    batches_done, counts, errors = rows(
        db, "SELECT batches_done, counts, errors FROM ingest_jobs WHERE id = %s", job["job_id"]
    )[0]
    assert batches_done == 2 and errors == []
    # What the killed worker had written counts as unchanged on redelivery: nothing was done twice.
    assert counts["documents_unchanged"] >= 1
    assert counts["documents_added"] + counts["documents_unchanged"] == FILES


def test_a_crashing_batch_ends_the_job_with_an_error_naming_it(
    celery_worker: object, db: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.pipeline import Pipeline
    from workers.ingest_jobs import queue_ingest

    def explode(self: Pipeline) -> None:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(Pipeline, "run", explode)  # the worker thread runs in this process
    (tmp_path / "a.md").write_text("# A\n\ntext\n")
    job_id = queue_ingest(db, [str(tmp_path / "a.md")])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, errors = rows(db, "SELECT status, errors FROM ingest_jobs WHERE id = %s", job_id)[0]
        if status == "done":
            break
        time.sleep(0.1)
    assert (status, errors) == (
        "done",
        [{"source": str(tmp_path / "a.md"), "error": "batch failed: RuntimeError: parser bug"}],
    )


def test_an_amqp_broker_carries_the_ingest_queue(db: Settings, rabbitmq: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    expected = _corpus(corpus)
    env = {**os.environ, "REDIS_URL": rabbitmq, "LORE_INGEST_BATCH_DOCS": str(BATCH_DOCS)}
    status = subprocess.run([*LORE, "status", "--json"], env=env, capture_output=True, timeout=60)
    broker = json.loads(status.stdout)["redis"]
    assert broker["reachable"] is True and broker["version"].startswith("RabbitMQ"), broker
    worker = _worker(env, tmp_path / "worker.log")
    try:
        # --wait: the command returns once the workers are done, with the counts `lore ingest --json` reports.
        waited = subprocess.run(
            [*LORE, "ingest", "--queue", "--wait", "--json", str(corpus)], env=env, capture_output=True, timeout=180
        )
        assert worker.poll() is None, "the worker exited: " + (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    assert waited.returncode == 0, waited.stderr
    job = json.loads(waited.stdout)
    assert job["status"] == "done" and job["errors"] == [] and job["batches_done"] == 2
    assert (job["documents_added"], job["documents_unchanged"], job["documents_deleted"]) == (FILES, 0, 0)
    assert job["chunks_added"] == sum(expected.values())
    assert _chunks_per_document(db) == expected
