"""Writes to the knowledge base: document upserts and chunk COPY in one transaction, vector reuse, deletes,
sync cursors, and the HNSW index strategy for bulk loads.

Index strategy (measured in docs/benchmarks.md): inserting into a table that has the HNSW index costs
milliseconds per row, while building the index once costs well under a millisecond per row with
`maintenance_work_mem` = 1 GB. So a run starts with the index in place (small incremental batches keep
it), and at its first write into a (nearly) empty table, or once it has written more than BULK_MIN_ROWS
rows and more than a fifth of what the table held before, it drops the index (and the two GIN indexes, which
are also cheaper to build once than to update per row), keeps COPYing, and rebuilds them at the end (a run
that writes nothing never touches them). An advisory lock keeps two runs from doing this at once, and every
run first recreates any index a killed run left missing.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from ingest.chunking import ChunkText
from lore.config import Settings
from lore.db import database_url, raw_connection, refresh_page_vectors
from lore.logs import kv

log = logging.getLogger(__name__)

HNSW_INDEX = "ix_chunks_embedding_hnsw"


def _bulk_indexes() -> dict[str, str]:
    """The indexes a bulk load drops and rebuilds (building each once is far cheaper than updating it per row),
    compiled from their one definition in lore/models.py."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex

    from lore.models import Base

    wanted = (HNSW_INDEX, "ix_chunks_tsv", "ix_chunks_acl")
    indexes = {str(ix.name): ix for ix in Base.metadata.tables["chunks"].indexes}
    dialect = postgresql.dialect()
    return {name: str(CreateIndex(indexes[name], if_not_exists=True).compile(dialect=dialect)) for name in wanted}


BULK_INDEXES = _bulk_indexes()
BULK_MIN_ROWS = 2000
_BULK_LOCK_KEY = 0x4C4F5245  # "LORE": one bulk load at a time
COPY_CHUNKS = (
    "COPY chunks (document_id, ord, heading, text, text_hash, embedding, acl, uri, title)"
    " FROM STDIN WITH (FORMAT BINARY)"
)
COPY_TYPES = ["int8", "int4", "text", "text", "text", "vector", "text[]", "text", "text"]


@dataclass
class PreparedDocument:
    """A parsed, chunked document ready to write (vectors filled in by the pipeline)."""

    uri: str
    title: str
    source_kind: str
    source_root: str | None
    content_hash: str
    acl: list[str]
    meta: dict[str, Any]
    chunks: list[ChunkText]
    source: str = ""
    vectors: np.ndarray | None = None


@dataclass
class WriteResult:
    added: int = 0
    updated: int = 0
    chunks: int = 0
    # Documents the database refused (bad data), as (source, reason): they failed alone, the rest went in.
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def add(self, other: WriteResult) -> None:
        self.added += other.added
        self.updated += other.updated
        self.chunks += other.chunks
        self.rejected.extend(other.rejected)


def existing_hashes(settings: Settings, uris: list[str]) -> dict[str, str]:
    if not uris:
        return {}
    with raw_connection(settings) as conn:
        rows = conn.execute("SELECT uri, content_hash FROM documents WHERE uri = ANY(%s)", (uris,)).fetchall()
    return {str(uri): str(content_hash) for uri, content_hash in rows}


def stored_vectors(settings: Settings, text_hashes: list[str]) -> dict[str, np.ndarray]:
    """Vectors already in the knowledge base for these text hashes: identical text is never embedded twice."""
    if not text_hashes:
        return {}
    with raw_connection(settings) as conn:
        rows = conn.execute(
            "SELECT DISTINCT ON (text_hash) text_hash, embedding FROM chunks WHERE text_hash = ANY(%s)",
            (text_hashes,),
        ).fetchall()
    return {str(h): np.asarray(vector, dtype=np.float32) for h, vector in rows}


# Into an HNSW-indexed table every row costs an index insertion in the server backend that writes it (about
# 3 ms on this machine): a large batch is split over this many connections, so all cores insert at once.
PARALLEL_MIN_CHUNKS = 200


def write_documents(settings: Settings, documents: list[PreparedDocument], *, writers: int = 1) -> WriteResult:
    """Upsert the documents and replace their chunks; each document's replacement is atomic (readers see its
    old chunks or its new ones). With `writers` > 1 a large batch is written by that many connections at
    once, each a transaction over whole documents. A document the database refuses fails alone (`rejected`)."""
    chunks = sum(len(d.chunks) for d in documents)
    if writers <= 1 or len(documents) < 2 or chunks < PARALLEL_MIN_CHUNKS:
        return _write_group(settings, documents)
    groups: list[list[PreparedDocument]] = [[] for _ in range(min(writers, len(documents)))]
    loads = [0] * len(groups)
    for document in sorted(documents, key=lambda d: -len(d.chunks)):  # greedy balance by chunk count
        smallest = loads.index(min(loads))
        groups[smallest].append(document)
        loads[smallest] += len(document.chunks)
    result = WriteResult()
    with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="lore-write") as pool:
        for part in pool.map(lambda group: _write_group(settings, group), groups):
            result.add(part)
    return result


def _write_group(settings: Settings, documents: list[PreparedDocument]) -> WriteResult:
    """One transaction; if the database refuses it, each document again alone, so a bad one costs only itself."""
    try:
        return _write_transaction(settings, documents)
    except psycopg.DataError as exc:
        if len(documents) == 1:
            return WriteResult(rejected=[(documents[0].source or documents[0].uri, f"database rejected it: {exc}")])
    result = WriteResult()
    for document in documents:
        result.add(_write_group(settings, [document]))
    return result


def _write_transaction(settings: Settings, documents: list[PreparedDocument]) -> WriteResult:
    result = WriteResult()
    if not documents:
        return result
    rows = [
        {
            "uri": d.uri,
            "title": d.title,
            "source_kind": d.source_kind,
            "source_root": d.source_root,
            "content_hash": d.content_hash,
            "acl": d.acl,
            "meta": d.meta,
        }
        for d in documents
    ]
    with raw_connection(settings) as conn:
        upserted = conn.execute(
            """
            INSERT INTO documents (uri, title, source_kind, source_root, content_hash, acl, meta)
            SELECT uri, title, source_kind, source_root, content_hash, acl, meta
            FROM jsonb_to_recordset(%s::jsonb)
                 AS x(uri text, title text, source_kind text, source_root text, content_hash text,
                      acl text[], meta jsonb)
            ON CONFLICT (uri) DO UPDATE SET
                title = EXCLUDED.title, source_kind = EXCLUDED.source_kind, source_root = EXCLUDED.source_root,
                content_hash = EXCLUDED.content_hash, acl = EXCLUDED.acl, meta = EXCLUDED.meta, updated_at = now()
            RETURNING id, uri, (xmax = 0) AS inserted
            """,
            (json.dumps(rows),),
        ).fetchall()
        ids = {str(uri): int(doc_id) for doc_id, uri, _ in upserted}
        result.added = sum(1 for *_, inserted in upserted if inserted)
        result.updated = len(upserted) - result.added
        replaced = [int(doc_id) for doc_id, _, inserted in upserted if not inserted]
        if replaced:
            conn.execute("DELETE FROM chunks WHERE document_id = ANY(%s)", (replaced,))
        with conn.cursor() as cur, cur.copy(COPY_CHUNKS) as copy:
            copy.set_types(COPY_TYPES)
            for document in documents:
                assert document.vectors is not None
                doc_id = ids[document.uri]
                for chunk, vector in zip(document.chunks, document.vectors, strict=True):
                    copy.write_row(
                        (
                            doc_id,
                            chunk.ord,
                            chunk.heading,
                            chunk.text,
                            chunk.text_hash,
                            vector,
                            document.acl,
                            document.uri,
                            document.title,
                        )
                    )
                    result.chunks += 1
        refresh_page_vectors(conn, sorted(ids.values()))
    return result


def delete_vanished(settings: Settings, root: str, seen_uris: list[str]) -> int:
    """A directory sync: delete the documents under `root` whose files are gone (chunks cascade)."""
    with raw_connection(settings) as conn:
        deleted = conn.execute(
            "DELETE FROM documents WHERE source_root = %s AND NOT (uri = ANY(%s)) RETURNING id", (root, seen_uris)
        ).fetchall()
    return len(deleted)


def delete_uris(settings: Settings, uris: list[str]) -> int:
    with raw_connection(settings) as conn:
        return len(conn.execute("DELETE FROM documents WHERE uri = ANY(%s) RETURNING id", (uris,)).fetchall())


def get_cursor(settings: Settings, source: str) -> str | None:
    with raw_connection(settings) as conn:
        row = conn.execute("SELECT cursor FROM sync_cursors WHERE source = %s", (source,)).fetchone()
    return str(row[0]) if row else None


def set_cursor(settings: Settings, source: str, cursor: str) -> None:
    with raw_connection(settings) as conn:
        conn.execute(
            "INSERT INTO sync_cursors (source, cursor) VALUES (%s, %s)"
            " ON CONFLICT (source) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()",
            (source, cursor),
        )


def synced_channels(settings: Settings) -> list[str]:
    """Channels to sync on schedule: those synced before, and those switched to live indexing."""
    with raw_connection(settings) as conn:
        rows = conn.execute(
            "SELECT substr(source, 9) FROM sync_cursors WHERE source LIKE 'slack://%%'"
            " UNION SELECT channel_id FROM channel_settings WHERE live_index"
        ).fetchall()
    return sorted({str(r[0]) for r in rows} | set(settings.csv("live_index_channels")))


class IndexStrategy:
    """Keeps the indexes for incremental writes; drops them for a big load and rebuilds them once at the end."""

    def __init__(self, settings: Settings, *, allow_bulk: bool = True) -> None:
        self.settings = settings
        self.allow_bulk = allow_bulk
        self.written = 0
        self.bulk = False
        self.rebuild_seconds: float | None = None
        self._lock_conn: psycopg.Connection[Any] | None = None
        with raw_connection(settings) as conn:
            # A run killed during a bulk load left indexes missing (checked first: CREATE INDEX IF NOT EXISTS
            # would still wait for a share lock behind concurrent writers).
            present = {
                str(r[0])
                for r in conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'chunks' AND indexname = ANY(%s)",
                    (list(BULK_INDEXES),),
                ).fetchall()
            }
            missing = [name for name in BULK_INDEXES if name not in present]
            if missing:
                conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
                for name in missing:
                    conn.execute(BULK_INDEXES[name])
            row = conn.execute("SELECT count(*) FROM chunks").fetchone()
        self.rows_before = int(row[0]) if row else 0

    def before_write(self) -> None:
        """Switch to bulk mode when the table is (nearly) empty, or once this run has written a lot."""
        if self.bulk or not self.allow_bulk:
            return
        if self.rows_before < BULK_MIN_ROWS or (self.written >= BULK_MIN_ROWS and self.written * 5 >= self.rows_before):
            self._start_bulk()

    def after_write(self, rows: int) -> None:
        self.written += rows

    def _start_bulk(self) -> None:
        conn = psycopg.connect(database_url(self.settings), autocommit=True)
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (_BULK_LOCK_KEY,)).fetchone()
        if not got or not got[0]:
            conn.close()
            self.allow_bulk = False  # another run holds it: stay incremental
            return
        for name in BULK_INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        self._lock_conn = conn
        self.bulk = True
        log.info(kv("ingest.bulk_mode", written=self.written, rows_before=self.rows_before))

    def finish(self) -> None:
        """Rebuild the indexes after a bulk load (always, also when the run failed): the HNSW index (itself built
        by parallel workers) and the two GIN indexes at the same time, each on its own connection."""
        conn = self._lock_conn
        if conn is None:
            return
        try:
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(BULK_INDEXES), thread_name_prefix="lore-index") as pool:
                for future in [pool.submit(self._build, create) for create in BULK_INDEXES.values()]:
                    future.result()
            # Statistics for the planner now: search plans (HNSW scan or ACL index) depend on them.
            conn.execute("ANALYZE chunks")
            self.rebuild_seconds = time.perf_counter() - started
            log.info(kv("ingest.index_rebuilt", seconds=round(self.rebuild_seconds, 1)))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_BULK_LOCK_KEY,))
            conn.close()
            self._lock_conn = None
            self.bulk = False

    def _build(self, create: str) -> None:
        with psycopg.connect(database_url(self.settings), autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '1GB'")
            conn.execute(create)
