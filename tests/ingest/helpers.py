"""Test helpers for ingest: PDFs with real text generated with pypdf, and a few SQL look-ups."""

from __future__ import annotations

import io
from typing import Any

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from lore.config import Settings
from lore.db import raw_connection


def make_pdf(lines: list[str], *, password: str | None = None) -> bytes:
    """A one-page PDF whose text layer holds `lines` (Helvetica), optionally encrypted."""
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    ops = ["BT /F1 12 Tf 72 720 Td 14 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    stream = DecodedStreamObject()
    stream.set_data(" ".join(ops).encode("latin-1"))
    page[NameObject("/Contents")] = writer._add_object(stream)
    if password is not None:
        writer.encrypt(password)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def rows(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with raw_connection(settings) as conn:
        return conn.execute(sql, params).fetchall()


def chunk_texts(settings: Settings, uri_like: str) -> list[str]:
    return [
        t
        for (t,) in rows(
            settings,
            "SELECT c.text FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.uri LIKE %s ORDER BY c.ord",
            uri_like,
        )
    ]
