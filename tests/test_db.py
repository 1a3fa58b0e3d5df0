"""The database layer: embedded server, migrations round trip, models and migrations agree, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from lore.config import Settings
from lore.db import DatabaseError, check_database, database_url, get_engine, sqlalchemy_url
from lore.models import Base

REPO = Path(__file__).resolve().parent.parent
LORE = [sys.executable, "-m", "lore.cli"]


def test_embedded_server_is_configured_once_for_lore(migrated: Settings) -> None:
    from lore.db import _configure_embedded, embedded_server_settings

    wanted = embedded_server_settings()
    with psycopg.connect(database_url(migrated), autocommit=True) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("minimal",)
        assert conn.execute("SHOW max_wal_senders").fetchone() == ("0",)
        shared_mb = int(
            conn.execute("SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'").fetchone()[
                0
            ]
        )
    assert shared_mb == int(wanted["shared_buffers"].removesuffix("MB")) and 128 <= shared_mb <= 1024
    # Started again (already configured): nothing to change, so no restart.
    assert _configure_embedded(database_url(migrated)) is False


def _fresh_database(settings: Settings, name: str) -> str:
    """Create an empty database on the embedded server and return its psycopg URI."""
    base = database_url(settings)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.replace("/lore?", f"/{name}?")


def test_embedded_server_has_pgvector(migrated: Settings) -> None:
    info = check_database(migrated)
    assert info["embedded"] is True
    assert info["postgres_version"].startswith("18")
    assert info["pgvector_installed"] is not None and info["pgvector_installed"] >= "0.8"
    assert "host=" in info["url"]  # Unix socket only


def test_upgrade_leaves_nothing_for_autogenerate(migrated: Settings) -> None:
    engine = create_engine(sqlalchemy_url(migrated))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_schema_has_the_indexes_that_make_search_fast(migrated: Settings) -> None:
    with get_engine(migrated).connect() as conn:
        rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks'")).all()
    defs = {name: d for name, d in rows}
    assert "USING hnsw (embedding vector_cosine_ops)" in defs["ix_chunks_embedding_hnsw"]
    assert "USING gin (tsv)" in defs["ix_chunks_tsv"]


def test_upgrade_downgrade_round_trip(migrated: Settings) -> None:
    from alembic import command
    from lore.migrations import alembic_config

    url = _fresh_database(migrated, "roundtrip")
    scratch = Settings(DATABASE_URL=url, _env_file=None)  # type: ignore[call-arg]
    config = alembic_config(scratch)
    command.upgrade(config, "head")
    with psycopg.connect(url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"documents", "chunks", "answers", "votes", "comparisons", "ingest_jobs", "slack_events"} <= tables
    command.downgrade(config, "base")
    with psycopg.connect(url) as conn:
        left = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert left == {"alembic_version"}
    command.upgrade(config, "head")  # and back up again on the same database


def test_upgrade_to_0003_backfills_the_evidence_of_existing_votes(migrated: Settings) -> None:
    """A deployment with votes recorded before migration 0003 keeps its feedback memory after the upgrade."""
    from alembic import command
    from lore.migrations import alembic_config

    url = _fresh_database(migrated, "backfill")
    config = alembic_config(Settings(DATABASE_URL=url, _env_file=None))  # type: ignore[call-arg]
    command.upgrade(config, "0002_vote_marks")
    vector = "[" + ",".join(["0.05"] * 384) + "]"
    with psycopg.connect(url) as conn:
        doc = conn.execute(
            "INSERT INTO documents (uri, title, content_hash, acl) VALUES ('kb://a', 'A', 'h', '{public}') RETURNING id"
        ).fetchone()[0]
        chunk = conn.execute(
            "INSERT INTO chunks (document_id, ord, heading, text, text_hash, embedding, acl) "
            "VALUES (%s, 0, 'A', 'alpha', 'ha', %s, '{public}') RETURNING id",
            (doc, vector),
        ).fetchone()[0]
        answer = conn.execute(
            "INSERT INTO answers (question, answer, model, question_embedding, chunk_ids) "
            "VALUES ('q', 'a', 'm', %s, %s) RETURNING id",
            (vector, [chunk]),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO votes (answer_id, user_id, value) VALUES (%s, 'U1', 1), (%s, 'U2', 1)", (answer, answer)
        )
    command.upgrade(config, "head")
    with psycopg.connect(url) as conn:
        evidence = conn.execute("SELECT answer_id, document_id, w FROM feedback_evidence").fetchall()
        held = conn.execute("SELECT answer_id FROM feedback_answers").fetchall()
        version = conn.execute("SELECT version FROM feedback_state").fetchone()
    assert [(a, d) for a, d, _ in evidence] == [(answer, doc)] and evidence[0][2] > 0
    assert held == [(answer,)] and version is not None and version[0] >= 1
    # Migration 0005: the chunk written before it carries its document's uri and title, and is still found
    # through the HNSW index rebuilt after the backfill.
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT uri, title FROM chunks").fetchall() == [("kb://a", "A")]
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0] for r in conn.execute(f"EXPLAIN SELECT id FROM chunks ORDER BY embedding <=> '{vector}' LIMIT 1")
        )
        assert "ix_chunks_embedding_hnsw" in plan
        assert conn.execute(f"SELECT id FROM chunks ORDER BY embedding <=> '{vector}' LIMIT 1").fetchall() == [(chunk,)]


def test_unique_keys_make_votes_and_events_idempotent(db: Settings) -> None:
    from sqlalchemy.exc import IntegrityError

    with get_engine(db).begin() as conn:
        answer_id = conn.execute(
            text("INSERT INTO answers (question, answer, model) VALUES ('q', 'a', 'm') RETURNING id")
        ).scalar_one()
        conn.execute(text("INSERT INTO votes (answer_id, user_id, value) VALUES (:a, 'U1', 1)"), {"a": answer_id})
    with pytest.raises(IntegrityError), get_engine(db).begin() as conn:
        conn.execute(text("INSERT INTO votes (answer_id, user_id, value) VALUES (:a, 'U1', -1)"), {"a": answer_id})
    with pytest.raises(IntegrityError), get_engine(db).begin() as conn:
        conn.execute(text("INSERT INTO votes (answer_id, user_id, value) VALUES (:a, 'U2', 5)"), {"a": answer_id})
    with pytest.raises(IntegrityError), get_engine(db).begin() as conn:
        conn.execute(text("INSERT INTO slack_events (event_id) VALUES ('Ev1'), ('Ev1')"))


def test_wrong_dimension_vector_is_rejected(db: Settings) -> None:
    with pytest.raises(Exception, match="384"), get_engine(db).begin() as conn:
        doc = conn.execute(
            text("INSERT INTO documents (uri, content_hash) VALUES ('u', 'h') RETURNING id")
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO chunks (document_id, ord, text, text_hash, embedding, acl, uri, title) "
                "VALUES (:d, 0, 't', 'h', :e, ARRAY['public'], 'u', '')"
            ),
            {"d": doc, "e": "[" + ",".join(["0.1"] * 10) + "]"},
        )


def test_openai_embeddings_without_key_or_server_is_a_clear_error() -> None:
    from lore.embeddings import EmbeddingError, get_embedder

    settings = Settings(_env_file=None).model_copy(  # type: ignore[call-arg]
        update={"embeddings": "openai:text-embedding-3-small", "openai_api_key": None, "openai_base_url": None}
    )
    with pytest.raises(EmbeddingError, match="needs OPENAI_API_KEY, or OPENAI_BASE_URL"):
        get_embedder(settings)


@pytest.mark.parametrize(
    "command", [["status"], ["feedback", "stats"], ["feedback", "vote", "1", "up", "--user", "U1"]]
)
def test_wrong_database_url_is_one_clear_line(tmp_path: Path, command: list[str]) -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = subprocess.run([*LORE, *command], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("lore: error: cannot connect to the database")
    assert "DATABASE_URL" in result.stderr


def test_database_without_pgvector_is_one_clear_line(migrated: Settings, tmp_path: Path) -> None:
    # The machine's PostgreSQL 15 has no pgvector; fall back to asserting via a settings object if absent.
    url = "postgresql://postgres@/postgres?host=/var/run/postgresql"
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            has_vector = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name='vector'").fetchone()
    except psycopg.OperationalError:
        pytest.fail("the machine's PostgreSQL 15 (without pgvector) should be running for this test")
    assert has_vector is None
    with pytest.raises(DatabaseError, match="no pgvector extension"):
        check_database(Settings(DATABASE_URL=url, _env_file=None))  # type: ignore[call-arg]
    env = {**os.environ, "DATABASE_URL": url}
    result = subprocess.run([*LORE, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no pgvector extension" in result.stderr


def test_unreachable_redis_is_one_clear_line(migrated: Settings, tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run([*LORE, "worker"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Redis at redis://127.0.0.1:1/0 is not reachable" in result.stderr
    status = subprocess.run([*LORE, "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert '"reachable": false' in status.stdout


def test_two_processes_share_the_embedded_server(migrated: Settings) -> None:
    """Two processes at once use one server; neither stops it under the other, and it outlives both."""
    script = "\n".join(
        [
            "import time, psycopg",
            "from lore.config import Settings",
            "from lore.db import database_url",
            "url = database_url(Settings())",
            "with psycopg.connect(url) as conn:",
            "    for i in range(25):",
            "        conn.execute('INSERT INTO slack_events (event_id) VALUES (%s)', (f'{i}-{time.time_ns()}',))",
            "        conn.commit()",
            "        time.sleep(0.02)",
            "print(url)",
        ]
    )
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1] == database_url(migrated)
    with psycopg.connect(database_url(migrated)) as conn:
        assert conn.execute("SELECT count(*) FROM slack_events").fetchone()[0] >= 50


def test_two_processes_starting_a_new_embedded_server_at_once_do_not_restart_it_under_each_other(
    tmp_path: Path,
) -> None:
    """`lore serve` and `lore worker` started together on a new machine: one creates, configures and restarts
    the server while the other waits, then both use it without losing a connection."""
    from lore.db import stop_embedded

    home = tmp_path / "home"
    script = "\n".join(
        [
            "import sys, time, psycopg",
            "from pathlib import Path",
            "from lore.config import Settings",
            "from lore.db import database_url",
            "settings = Settings().model_copy(update={'lore_home': Path(sys.argv[1]), 'database_url': None})",
            "url = database_url(settings)",
            "with psycopg.connect(url) as conn:",
            "    for _ in range(30):",
            "        conn.execute('SELECT 1')",
            "        time.sleep(0.05)",
            "    print(url, conn.execute('SHOW wal_level').fetchone()[0])",
        ]
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(home)], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    try:
        outs = [p.communicate(timeout=180)[0].strip() for p in procs]
        assert [p.returncode for p in procs] == [0, 0]
        assert outs[0] == outs[1] and outs[0].endswith(" minimal")
    finally:
        stop_embedded(Settings().model_copy(update={"lore_home": home, "database_url": None}))


def test_a_pgvector_older_than_0_8_is_named_with_its_remedy(migrated: Settings) -> None:
    from lore.db import check_database, pgvector_problem

    assert check_database(migrated)["pgvector_installed"] >= "0.8"  # the embedded server's passes
    assert pgvector_problem("0.8.6", "0.8.6") is None
    assert pgvector_problem("0.10.0", None) is None  # compared as numbers, not text
    too_old = pgvector_problem("0.7.4", "0.7.4")
    assert too_old is not None and "pgvector is 0.7.4; Lore needs 0.8.0 or newer" in too_old
    stale = pgvector_problem("0.8.1", "0.5.1")
    assert stale is not None and "ALTER EXTENSION vector UPDATE" in stale


def test_commands_before_migration_say_to_migrate(migrated: Settings, tmp_path: Path) -> None:
    """A second database on the embedded server, never migrated: each command names the remedy."""
    base = database_url(migrated)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS lore_unmigrated")
        conn.execute("CREATE DATABASE lore_unmigrated")
    env = {**os.environ, "DATABASE_URL": base.replace("/lore?", "/lore_unmigrated?")}
    commands = (["feedback", "stats"], ["feedback", "vote", "1", "up", "--user", "U1"], ["search", "deploys"])
    for command in commands:
        result = subprocess.run([*LORE, *command], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "not migrated: run `lore db upgrade`" in result.stderr
