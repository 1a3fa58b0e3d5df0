"""Switching the knowledge base to another embedder: re-embed into shadow columns, then swap in one transaction.

The protocol and why it never mixes two models' vectors is in lore.embedder_registry's docstring. The steps
(`switch_embedder`, run by the Celery task workers.reembed_tasks.reembed_knowledge_base):

1. Fill chunks.embedding_next and answers.question_embedding_next with the new model's vectors, while
   searches and ingest go on against the live columns. Passage vectors the candidate computed when it was
   evaluated (its directory's passage_vectors.npy) are reused by text hash; only what changed is embedded.
2. Take the ingest lock exclusively (running ingest runs finish first; new ones wait), fill what those runs
   wrote, and build the HNSW index of the shadow column.
3. Mark the state `switching`, wait SWITCH_GRACE_S, and in one transaction: fill the answers written
   meanwhile, swap the columns (renames: catalog only) and their indexes, copy the new question vectors
   into feedback_answers, bump feedback_state and embedder_state.
4. Later (SWEEP_DELAY_S), re-embed the questions of answers recorded after the swap: an answer started
   before it was embedded with the old model and written after it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from lore.config import Settings
from lore.db import database_url, raw_connection, refresh_page_vectors, register_vectors
from lore.embedder_registry import (
    INGEST_LOCK_KEY,
    SWITCH_GRACE_S,
    VectorEmbedder,
    forget_active,
    model_embedder,
)
from lore.logs import kv

log = logging.getLogger(__name__)

FILL_BATCH = 256
# One switch at a time.
SWITCH_LOCK_KEY = 0x4C4F5247
# How long after a swap the questions of answers recorded since are embedded again (an answer can take this
# long between embedding its question and being recorded).
SWEEP_DELAY_S = 600.0
# The swap waits this long for its locks (searches in flight) before giving up, state unchanged.
SWAP_LOCK_TIMEOUT = "30s"

_BUMP_FEEDBACK = (
    "INSERT INTO feedback_state (id, version) VALUES (1, 1)"
    " ON CONFLICT (id) DO UPDATE SET version = feedback_state.version + 1"
)
# (table, live column, shadow column, live index, rows that need a vector, the text the vector is of)
_TARGETS = {
    "chunks": (
        "embedding",
        "embedding_next",
        "ix_chunks_embedding_hnsw",
        "true",
        "CASE WHEN heading <> '' THEN heading || E'\\n' || text ELSE text END",
    ),
    "answers": (
        "question_embedding",
        "question_embedding_next",
        "ix_answers_question_embedding_hnsw",
        "question_embedding IS NOT NULL",
        "question",
    ),
}
Pause = Callable[[str], None]


class SwitchError(RuntimeError):
    """The switch was refused or could not finish; the state is unchanged."""


def _model_row(conn: psycopg.Connection[Any], name: str) -> tuple[str, str, float | None, float | None, dict[str, Any]]:
    row = conn.execute(
        "SELECT path, status, before_mrr, after_mrr, report FROM embedder_models WHERE name = %s", (name,)
    ).fetchone()
    if row is None:
        raise SwitchError(f"no embedder named {name}: see `lore finetune embedder`")
    return str(row[0]), str(row[1]), row[2], row[3], dict(row[4] or {})


def _check_allowed(conn: psycopg.Connection[Any], name: str) -> str | None:
    """The model's path if it may be switched to; None when it is already active."""
    path, status, before, after, report = _model_row(conn, name)
    if status == "active":
        return None
    if status != "trained" or before is None or after is None or after <= before:
        raise SwitchError(f"{name} did not beat the active embedder on held-out questions ({before} -> {after})")
    row = conn.execute("SELECT active FROM embedder_state WHERE id = 1").fetchone()
    active = (row[0] if row else None) or "all-MiniLM-L6-v2"
    if report.get("against") not in (None, active):
        raise SwitchError(f"{name} was evaluated against {report.get('against')}, but {active} is active now")
    return path


def _cached_vectors(directory: Path) -> dict[str, np.ndarray]:
    """text hash -> vector computed when the candidate was evaluated (empty if none were kept)."""
    from lore.finetune_embedder import HASHES_FILE, VECTORS_FILE

    try:
        hashes = json.loads((directory / HASHES_FILE).read_text())
        vectors = np.load(directory / VECTORS_FILE)
    except (OSError, ValueError):
        return {}
    return dict(zip(hashes, vectors, strict=False))


def _fill(
    conn: psycopg.Connection[Any],
    table: str,
    embedder: VectorEmbedder,
    cache: dict[str, np.ndarray],
    *,
    after_id: int = 0,
) -> int:
    """Fill the shadow column of every row that needs one (from id `after_id` on); returns rows filled."""
    _, shadow, _, needs, source = _TARGETS[table]
    filled = 0
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS shadow_fill (id bigint, v vector({embedder.dim}))")
    while True:
        rows = conn.execute(
            f"SELECT id, {source}, encode(sha256(convert_to({source}, 'UTF8')), 'hex') FROM {table}"
            f" WHERE {shadow} IS NULL AND {needs} AND id > %s ORDER BY id LIMIT %s",
            (after_id, FILL_BATCH),
        ).fetchall()
        if not rows:
            return filled
        missing = [r for r in rows if r[2] not in cache]
        if missing:
            cache.update(zip([r[2] for r in missing], embedder.embed([r[1] for r in missing]), strict=True))
        conn.execute("TRUNCATE shadow_fill")
        with conn.cursor().copy("COPY shadow_fill (id, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector"])
            for r in rows:
                copy.write_row((int(r[0]), np.asarray(cache[r[2]], dtype=np.float32)))
        conn.execute(f"UPDATE {table} t SET {shadow} = s.v FROM shadow_fill s WHERE t.id = s.id")
        if not conn.autocommit:
            conn.commit()
        filled += len(rows)
        after_id = int(rows[-1][0])


def _reset_shadow(conn: psycopg.Connection[Any], name: str) -> None:
    """Shadow columns hold another model's vectors (a switch that died): start them empty for `name`."""
    row = conn.execute("SELECT shadow FROM embedder_state WHERE id = 1").fetchone()
    if row is not None and row[0] not in (None, name):
        for table, (_, shadow, _, _, _) in _TARGETS.items():
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {shadow}")
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {shadow} vector(384)")
    conn.execute(
        "INSERT INTO embedder_state (id, shadow) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET shadow = %s",
        (name, name),
    )


def _build_shadow_indexes(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET maintenance_work_mem = '1GB'")
    for table, (_, shadow, index, _, _) in _TARGETS.items():
        conn.execute(f"DROP INDEX IF EXISTS {index}_next")
        conn.execute(
            f"CREATE INDEX {index}_next ON {table} USING hnsw ({shadow} vector_cosine_ops)"
            " WITH (m = 16, ef_construction = 64)"
        )


def _swap(conn: psycopg.Connection[Any], name: str, embedder: VectorEmbedder, cache: dict[str, np.ndarray]) -> int:
    """The one transaction that moves every reader to the new vectors; returns the last answer id swapped."""
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
        # Answers keep being recorded until here: lock out writers, fill the last ones in this transaction.
        conn.execute("LOCK TABLE answers IN SHARE ROW EXCLUSIVE MODE")
        _fill(conn, "answers", embedder, cache)
        conn.execute("LOCK TABLE chunks IN SHARE ROW EXCLUSIVE MODE")
        if _fill(conn, "chunks", embedder, cache):
            raise SwitchError("passages were written during the switch's final phase")
        for table, (live, shadow, index, _, _) in _TARGETS.items():
            conn.execute(f"ALTER TABLE {table} RENAME COLUMN {live} TO {live}_old")
            conn.execute(f"ALTER TABLE {table} RENAME COLUMN {shadow} TO {live}")
            conn.execute(f"ALTER INDEX {index} RENAME TO {index}_old")
            conn.execute(f"ALTER INDEX {index}_next RENAME TO {index}")
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {live}_old")  # and its index
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {shadow} vector(384)")
        conn.execute("ALTER TABLE chunks ALTER COLUMN embedding SET NOT NULL")
        refresh_page_vectors(conn)  # page vectors of the new model's passages, in the same swap
        conn.execute(
            "UPDATE feedback_answers f SET question_embedding = a.question_embedding FROM answers a"
            " WHERE a.id = f.answer_id AND a.question_embedding IS NOT NULL"
        )
        conn.execute(_BUMP_FEEDBACK)
        conn.execute("UPDATE embedder_models SET status = 'retired' WHERE status = 'active'")
        conn.execute("UPDATE embedder_models SET status = 'active', activated_at = now() WHERE name = %s", (name,))
        conn.execute(
            "INSERT INTO embedder_state (id, active, version) VALUES (1, %s, 1) ON CONFLICT (id) DO UPDATE"
            " SET active = %s, version = embedder_state.version + 1, shadow = NULL, switching_since = NULL,"
            " updated_at = now()",
            (name, name),
        )
        row = conn.execute("SELECT coalesce(max(id), 0) FROM answers").fetchone()
    return int(row[0]) if row else 0


def switch_embedder(settings: Settings, name: str, *, pause: Pause | None = None) -> dict[str, Any]:
    """Re-embed the knowledge base with model `name` and switch to it (idempotent: an active model is a no-op)."""
    started = time.perf_counter()
    conn = psycopg.connect(database_url(settings), autocommit=True, application_name="lore-embedder-switch")
    try:
        register_vectors(conn)
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (SWITCH_LOCK_KEY,)).fetchone()
        if not got or not got[0]:
            raise SwitchError("another embedder switch is running")
        path = _check_allowed(conn, name)
        if path is None:
            return {"model": name, "activated": True, "already": True}
        embedder = model_embedder(settings, name, path, batch_size=settings.embed_batch)
        cache = _cached_vectors(settings.home / path)
        _reset_shadow(conn, name)
        counts = {table: _fill(conn, table, embedder, cache) for table in _TARGETS}
        if pause is not None:
            pause("filled")
        conn.execute("SELECT pg_advisory_lock(%s)", (INGEST_LOCK_KEY,))  # ingest runs in progress finish first
        counts["chunks"] += _fill(conn, "chunks", embedder, cache)
        _build_shadow_indexes(conn)
        conn.execute("UPDATE embedder_state SET switching_since = now() WHERE id = 1")
        forget_active(settings)
        time.sleep(SWITCH_GRACE_S)
        if pause is not None:
            pause("announced")
        last_answer = _swap(conn, name, embedder, cache)
        forget_active(settings)
    except BaseException as exc:
        _record_failure(settings, name, exc)
        raise
    finally:
        conn.close()  # releases the advisory locks
    _schedule_sweep(settings, last_answer)
    report = {
        "model": name,
        "activated": True,
        "passages": counts["chunks"],
        "questions": counts["answers"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    log.info(kv("embedder.switch", **report))
    return report


def _record_failure(settings: Settings, name: str, exc: BaseException) -> None:
    """A failed switch: the state is unchanged (no longer `switching`), the reason kept on the model's row."""
    try:
        with raw_connection(settings) as conn:
            conn.execute("UPDATE embedder_state SET switching_since = NULL WHERE id = 1")
            conn.execute(
                "UPDATE embedder_models SET report = report || jsonb_build_object('switch_error', %s::text)"
                " WHERE name = %s",
                (f"{type(exc).__name__}: {exc}", name),
            )
    except psycopg.Error:
        log.exception(kv("embedder.switch_failure_not_recorded", model=name))
    forget_active(settings)


def _schedule_sweep(settings: Settings, after_answer: int) -> None:
    try:
        from workers.reembed_tasks import sweep_answer_questions

        sweep_answer_questions.apply_async(args=[after_answer], countdown=SWEEP_DELAY_S)
    except Exception as exc:  # no broker: the answers recorded during the swap keep their vectors
        log.warning(kv("embedder.sweep_not_scheduled", error=type(exc).__name__))


def sweep_answer_questions(settings: Settings, after_answer: int) -> int:
    """Embed again, with the active model, the questions of answers recorded after `after_answer` (and the
    feedback memory's copies of them); idempotent. Returns the answers updated."""
    from lore.embedder_registry import active_embedder

    embedder = active_embedder(settings)
    with raw_connection(settings) as conn:
        rows = conn.execute(
            "SELECT id, question FROM answers WHERE id > %s AND question_embedding IS NOT NULL ORDER BY id",
            (after_answer,),
        ).fetchall()
        if not rows:
            return 0
        vectors = embedder.embed([str(r[1]) for r in rows])
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS shadow_fill (id bigint, v vector(384))")
        conn.execute("TRUNCATE shadow_fill")
        with conn.cursor().copy("COPY shadow_fill (id, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector"])
            for r, v in zip(rows, vectors, strict=True):
                copy.write_row((int(r[0]), np.asarray(v, dtype=np.float32)))
        conn.execute("UPDATE answers a SET question_embedding = s.v FROM shadow_fill s WHERE a.id = s.id")
        conn.execute(
            "UPDATE feedback_answers f SET question_embedding = s.v FROM shadow_fill s WHERE f.answer_id = s.id"
        )
        conn.execute(_BUMP_FEEDBACK)
    return len(rows)


def request_switch(settings: Settings, name: str, *, wait_s: float = 3600.0) -> dict[str, Any]:
    """Queue the switch as a Celery job and wait for it: the model active, or the job's error."""
    from workers.reembed_tasks import reembed_knowledge_base

    reembed_knowledge_base.delay(name)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        with raw_connection(settings) as conn:
            row = conn.execute(
                "SELECT status, report->>'switch_error' FROM embedder_models WHERE name = %s", (name,)
            ).fetchone()
        if row is not None and row[0] == "active":
            return {"activated": True}
        if row is not None and row[1]:
            return {"activated": False, "error": row[1]}
        time.sleep(0.5)
    return {"activated": False, "error": f"the switch job did not finish within {wait_s:.0f} s (a worker running?)"}
