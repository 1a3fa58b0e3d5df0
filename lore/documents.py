"""Reading the knowledge base by document, within what an asker may see: one document's text and metadata,
the list of documents, and what each source holds. Shared by the surfaces that browse (MCP, the console).

Every query filters on `documents.acl && visible`, so a document outside the asker's view reads exactly like
a document that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lore.config import Settings
from lore.db import raw_connection
from lore.search import visible_acl
from lore.types import Asker

# A document's text is rebuilt from its chunks; past this many characters it is cut (and says so).
MAX_DOCUMENT_CHARS = 200_000


@dataclass(frozen=True)
class DocumentSummary:
    id: int
    uri: str
    title: str
    source_kind: str
    updated_at: datetime


@dataclass(frozen=True)
class DocumentText:
    uri: str
    title: str
    source_kind: str
    source_root: str | None
    meta: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    chunks: int
    text: str
    truncated: bool


_DOCUMENT = """
SELECT d.id, d.uri, d.title, d.source_kind, d.source_root, d.meta, d.created_at, d.updated_at
FROM documents d WHERE d.uri = %s AND d.acl && %s::text[]
"""
_CHUNKS = "SELECT heading, text FROM chunks WHERE document_id = %s ORDER BY ord"


def document_text(settings: Settings, uri: str, *, asker: Asker | None) -> DocumentText | None:
    """The document at `uri` with its text (its passages in order under their headings), or None when there is
    no such document or the asker may not see it (the two are indistinguishable on purpose)."""
    with raw_connection(settings) as conn:
        row = conn.execute(_DOCUMENT, (uri, visible_acl(asker))).fetchone()
        if row is None:
            return None
        chunks = conn.execute(_CHUNKS, (row[0],)).fetchall()
    text, truncated = _assemble(chunks)
    _, found_uri, title, kind, root, meta, created, updated = row
    return DocumentText(
        uri=found_uri,
        title=title,
        source_kind=kind,
        source_root=root,
        meta=dict(meta or {}),
        created_at=created,
        updated_at=updated,
        chunks=len(chunks),
        text=text,
        truncated=truncated,
    )


def _assemble(chunks: list[tuple[str, str]]) -> tuple[str, bool]:
    """Passages in order, each heading path written once where it changes."""
    parts: list[str] = []
    size = 0
    current: str | None = None
    for heading, text in chunks:
        piece = (f"## {heading}\n\n" if heading and heading != current else "") + text
        current = heading
        if size + len(piece) > MAX_DOCUMENT_CHARS:
            parts.append(piece[: max(0, MAX_DOCUMENT_CHARS - size)])
            return "\n\n".join(parts), True
        parts.append(piece)
        size += len(piece) + 2
    return "\n\n".join(parts), False


def visible_documents(
    settings: Settings, *, asker: Asker | None, after_id: int = 0, limit: int = 500
) -> list[DocumentSummary]:
    """Documents the asker may see, by id, `limit` at a time after `after_id` (a cursor for paging)."""
    with raw_connection(settings) as conn:
        rows = conn.execute(
            """SELECT id, uri, title, source_kind, updated_at FROM documents
               WHERE acl && %s::text[] AND id > %s ORDER BY id LIMIT %s""",
            (visible_acl(asker), after_id, limit),
        ).fetchall()
    return [DocumentSummary(int(i), uri, title, kind, updated) for i, uri, title, kind, updated in rows]


_SOURCES = """
SELECT d.source_kind, d.source_root, count(*) AS documents,
       coalesce(sum((SELECT count(*) FROM chunks c WHERE c.document_id = d.id)), 0) AS chunks,
       max(d.updated_at) AS updated_at
FROM documents d WHERE d.acl && %s::text[]
GROUP BY d.source_kind, d.source_root
ORDER BY documents DESC, d.source_kind, d.source_root NULLS LAST
"""


def source_counts(settings: Settings, *, asker: Asker | None) -> list[dict[str, Any]]:
    """What the knowledge base holds that the asker may see, by source (kind and root): documents, passages."""
    with raw_connection(settings) as conn:
        rows = conn.execute(_SOURCES, (visible_acl(asker),)).fetchall()
    return [
        {
            "kind": kind,
            "root": root,
            "documents": int(documents),
            "chunks": int(chunks),
            "updated_at": updated.isoformat() if updated is not None else None,
        }
        for kind, root, documents, chunks, updated in rows
    ]
