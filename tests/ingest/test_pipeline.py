"""The pipeline end to end on the bundled handbook: counts, chunks, re-ingest, updates, directory sync."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np

from ingest import store
from ingest.chunking import ChunkText
from ingest.loaders.files import PARSERS
from ingest.pipeline import ingest_sources
from lore.config import Settings
from lore.db import raw_connection
from tests.conftest import REPO
from tests.ingest.helpers import SPHINX_GENINDEX

EXAMPLES = REPO / "examples"


def _rows(settings: Settings, sql: str, *params: object) -> list[tuple]:
    with raw_connection(settings) as conn:
        return conn.execute(sql, params).fetchall()


def test_examples_go_in_with_headings_and_reingest_changes_nothing(db: Settings, tmp_path: Path) -> None:
    corpus = tmp_path / "handbook"
    shutil.copytree(EXAMPLES, corpus)
    first = ingest_sources(db, [str(corpus)])
    files = sorted(p.name for p in corpus.iterdir() if p.suffix in PARSERS)
    assert first.errors == []
    assert first.documents_added == len(files)
    assert first.chunks_added == _rows(db, "SELECT count(*) FROM chunks")[0][0] > len(files)

    heading, text = _rows(
        db,
        "SELECT c.heading, c.text FROM chunks c JOIN documents d ON d.id = c.document_id"
        " WHERE d.uri LIKE %s AND c.text LIKE %s",
        "%deploy-process.md",
        "%shipyard rollback%",
    )[0]
    assert heading == "Deploy Process > Rollbacks"
    assert "```\nshipyard rollback --service tidepool-api --env production\n```" in text

    # The HTML page keeps its article and loses navigation, sidebar, footer and script.
    html = " ".join(
        t
        for (t,) in _rows(
            db,
            "SELECT c.text FROM chunks c JOIN documents d ON d.id = c.document_id"
            " WHERE d.uri LIKE '%%security-policy.html' ORDER BY c.ord",
        )
    )
    assert "YubiKey 5" in html and "16 characters" in html
    assert "window.analytics" not in html and "Edit this page" not in html and "On this page" not in html

    again = ingest_sources(db, [str(corpus)])
    assert again.as_json() == {
        "documents_added": 0,
        "documents_updated": 0,
        "documents_unchanged": len(files),
        "documents_deleted": 0,
        "chunks_added": 0,
        "errors": [],
    }
    assert again.chunks_embedded == 0


def test_changed_file_replaces_its_chunks_and_vanished_file_is_deleted(db: Settings, tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "a.md").write_text("# Alpha\n\nThe alpha service listens on port 8123.\n")
    (corpus / "b.md").write_text("# Beta\n\nThe beta service listens on port 9001.\n")
    (corpus / "c.md").write_text("# Gamma\n\nGamma runs nightly at 02:00.\n")
    assert ingest_sources(db, [str(corpus)]).documents_added == 3
    ids_before = {r[0] for r in _rows(db, "SELECT id FROM chunks")}

    (corpus / "a.md").write_text("# Alpha\n\nThe alpha service listens on port 8124.\n\n## Limits\n\n100 rps.\n")
    (corpus / "c.md").unlink()
    report = ingest_sources(db, [str(corpus)])
    assert (report.documents_updated, report.documents_unchanged, report.documents_deleted) == (1, 1, 1)
    assert report.chunks_embedded == 2  # only a.md's two new passages
    texts = sorted(t for (t,) in _rows(db, "SELECT text FROM chunks"))
    assert texts == sorted(
        ["The alpha service listens on port 8124.", "100 rps.", "The beta service listens on port 9001."]
    )
    # b.md's chunk was not rewritten; a.md's were replaced; nothing of c.md is left.
    assert len(ids_before & {r[0] for r in _rows(db, "SELECT id FROM chunks")}) == 1
    assert _rows(db, "SELECT count(*) FROM documents WHERE uri LIKE '%%c.md'")[0][0] == 0


def test_generated_index_pages_are_skipped_and_an_earlier_copy_is_removed(db: Settings, tmp_path: Path) -> None:
    """A Sphinx site's index page is skipped (not an error, exit status unaffected); one indexed by an earlier
    version of Lore (written here directly, as that version did) is removed from the knowledge base."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "genindex-A.html").write_bytes(SPHINX_GENINDEX)
    (site / "vpn.html").write_text(
        '<html><body><div class="body" role="main"><h1>VPN</h1><p>The gateway listens on UDP 51820.</p></div>'
        "</body></html>"
    )
    index_uri = (site / "genindex-A.html").resolve().as_uri()
    old = _prepared(0, 1, text="abs() (built-in function) A (in module re)")
    old.uri, old.source_root = index_uri, str(site.resolve())
    store.write_documents(db, [old])

    report = ingest_sources(db, [str(site)])
    assert report.ok and report.errors == []
    assert (report.documents_added, report.documents_deleted, report.skipped) == (1, 1, 1)
    uris = [u for (u,) in _rows(db, "SELECT uri FROM documents")]
    assert uris == [(site / "vpn.html").resolve().as_uri()]
    assert _rows(db, "SELECT count(*) FROM chunks WHERE text LIKE '%%built-in function%%'")[0][0] == 0

    again = ingest_sources(db, [str(site)])
    assert (again.documents_unchanged, again.documents_deleted, again.skipped, again.errors) == (1, 0, 1, [])


def test_identical_text_is_embedded_once(db: Settings, tmp_path: Path) -> None:
    body = "# Shared\n\nThe same paragraph in two places: the VPN gateway listens on UDP 51820.\n"
    (tmp_path / "one.md").write_text(body)
    (tmp_path / "two.md").write_text(body)
    first = ingest_sources(db, [str(tmp_path)])
    assert (first.chunks_added, first.chunks_embedded) == (2, 1)
    (tmp_path / "three.md").write_text(body)
    second = ingest_sources(db, [str(tmp_path)])
    assert (second.documents_added, second.chunks_added, second.chunks_embedded) == (1, 1, 0)  # vector reused
    vectors = {str(v) for (v,) in _rows(db, "SELECT embedding FROM chunks")}
    assert len(vectors) == 1


def test_bulk_load_rebuilds_the_indexes_and_a_missing_index_comes_back(db: Settings, tmp_path: Path) -> None:
    from ingest.store import BULK_INDEXES

    def present() -> set[str]:
        return {n for (n,) in _rows(db, "SELECT indexname FROM pg_indexes WHERE tablename = 'chunks'")}

    (tmp_path / "a.md").write_text("# A\n\nAlpha text for the index test.\n")
    report = ingest_sources(db, [str(tmp_path)])
    assert report.index_rebuild_seconds is not None  # first write into an empty table: bulk mode
    assert set(BULK_INDEXES) <= present()
    # Built at the same time on separate connections: each one complete and valid; statistics taken after.
    valid = _rows(db, "SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid = 'chunks'::regclass")
    assert valid == [(True,)]
    assert _rows(db, "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'chunks'") == [(True,)]
    with raw_connection(db) as conn:
        conn.execute("DROP INDEX ix_chunks_embedding_hnsw")  # as if a bulk load had been killed
    again = ingest_sources(db, [str(tmp_path)])
    assert again.documents_unchanged == 1 and again.index_rebuild_seconds is None
    assert set(BULK_INDEXES) <= present()


def test_a_chunk_row_stays_whole_in_the_table(db: Settings) -> None:
    """Text, tsvector and embedding of a full-size chunk live in its heap row: nothing goes to TOAST (which cost
    a second insert per row and a second lookup per search hit)."""
    words = " ".join(f"word{i} configuration deployment" for i in range(150))  # ~3.5 KB of text and tsvector
    document = _prepared(1, 3, text=words)
    assert store.write_documents(db, [document]).chunks == 3
    toast = _rows(
        db,
        "SELECT pg_relation_size(reltoastrelid), (SELECT avg(pg_column_size(c.*)) FROM chunks c)"
        " FROM pg_class WHERE relname = 'chunks'",
    )
    assert toast[0][0] == 0 and toast[0][1] > 4000


def _prepared(n: int, chunks: int, *, text: str = "passage") -> store.PreparedDocument:
    """A parsed, chunked and embedded document, as the pipeline hands it to the writer."""
    rng = np.random.default_rng(n)
    texts = [ChunkText(ord=i, heading=f"Doc {n}", text=f"document {n} {text} {i}") for i in range(chunks)]
    vectors = rng.standard_normal((chunks, 384)).astype(np.float32)
    return store.PreparedDocument(
        uri=f"kb://doc/{n}",
        title=f"Doc {n}",
        source_kind="file",
        source_root=None,
        content_hash=hashlib.sha256(f"{n}{text}".encode()).hexdigest(),
        acl=["public"],
        meta={},
        chunks=texts,
        source=f"/docs/{n}.md",
        vectors=vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
    )


def test_a_large_batch_into_an_indexed_table_is_written_by_several_connections(db: Settings) -> None:
    import threading

    writers_seen: set[str] = set()
    real = store._write_transaction

    def spy(settings: Settings, documents: list[store.PreparedDocument]) -> store.WriteResult:
        writers_seen.add(threading.current_thread().name)
        return real(settings, documents)

    store._write_transaction = spy  # type: ignore[assignment]
    try:
        first = store.write_documents(db, [_prepared(n, 60) for n in range(6)], writers=3)
        again = store.write_documents(db, [_prepared(n, 50) for n in range(4)], writers=3)  # 4 replaced
    finally:
        store._write_transaction = real  # type: ignore[assignment]
    assert len(writers_seen) == 3  # three connections, each on its own thread
    assert (first.added, first.updated, first.chunks) == (6, 0, 360)
    assert (again.added, again.updated, again.chunks) == (0, 4, 200)
    counts = dict(
        _rows(db, "SELECT d.uri, count(c.id) FROM documents d JOIN chunks c ON c.document_id = d.id GROUP BY 1")
    )
    assert counts == {**{f"kb://doc/{n}": 50 for n in range(4)}, "kb://doc/4": 60, "kb://doc/5": 60}
    # Written with the HNSW index in place (no bulk strategy here): it is still there.
    assert "ix_chunks_embedding_hnsw" in {n for (n,) in _rows(db, "SELECT indexname FROM pg_indexes")}


def test_a_document_the_database_refuses_fails_alone_in_one_or_several_connections(db: Settings) -> None:
    for writers, base in ((1, 0), (3, 10)):
        bad = _prepared(base, 60, text="nul \x00 byte")  # PostgreSQL text cannot hold NUL
        good = [_prepared(base + n, 60) for n in range(1, 5)]
        result = store.write_documents(db, [good[0], bad, *good[1:]], writers=writers)
        assert (result.added, result.chunks) == (4, 240), writers
        assert [source for source, _ in result.rejected] == [f"/docs/{base}.md"]
        assert "database rejected it" in result.rejected[0][1]
    uris = {u for (u,) in _rows(db, "SELECT uri FROM documents")}
    assert uris == {f"kb://doc/{n}" for n in (1, 2, 3, 4, 11, 12, 13, 14)}
