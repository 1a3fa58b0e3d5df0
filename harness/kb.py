"""Test helper: put a document and its chunks into the knowledge base with real embeddings and plain SQL.

Independent of the ingest pipeline so search and agent tests can build exactly the knowledge base they need.
"""

from __future__ import annotations

import hashlib

from lore.config import Settings
from lore.db import raw_connection, refresh_page_vectors
from lore.embeddings import get_embedder
from lore.models import PUBLIC


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def add_document(
    settings: Settings,
    *,
    uri: str,
    title: str,
    sections: list[tuple[str, str]],
    acl: list[str] | None = None,
) -> int:
    """Insert one document whose chunks are `sections` ((heading, text) pairs, in order); returns its id."""
    acl = list(acl) if acl else [PUBLIC]
    vectors = get_embedder(settings).embed([f"{heading}\n{text}" if heading else text for heading, text in sections])
    content_hash = _sha("\x00".join(f"{h}\x01{t}" for h, t in sections))
    with raw_connection(settings) as conn:
        row = conn.execute(
            "INSERT INTO documents (uri, title, source_kind, content_hash, acl) VALUES (%s, %s, 'test', %s, %s)"
            " RETURNING id",
            (uri, title, content_hash, acl),
        ).fetchone()
        assert row is not None
        document_id = int(row[0])
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO chunks (document_id, ord, heading, text, text_hash, embedding, acl, uri, title)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (document_id, i, heading, text, _sha(text), vectors[i], acl, uri, title)
                    for i, (heading, text) in enumerate(sections)
                ],
            )
        refresh_page_vectors(conn, [document_id])  # as ingest writes it
    return document_id
