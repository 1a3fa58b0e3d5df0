"""Test helpers for ingest: PDFs with real text generated with pypdf, Sphinx's generated pages, and a few SQL
look-ups."""

from __future__ import annotations

import io
from typing import Any

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from lore.config import Settings
from lore.db import raw_connection

# Trimmed from what Sphinx writes for genindex-A.html, py-modindex.html and search.html.
SPHINX_GENINDEX = b"""<html><head><title>Index</title></head><body><div class="body" role="main">
<h1 id="index-A">Index &#8211; A</h1>
<table style="width: 100%" class="indextable genindextable"><tr><td><ul>
<li><a href="library/functions.html#abs">abs() (built-in function)</a></li>
<li><a href="library/re.html#re.A">A (in module re)</a></li></ul></td></tr></table></div></body></html>"""
SPHINX_MODINDEX = b"""<html><head><title>Python Module Index</title></head><body><div class="body" role="main">
<h1>Python Module Index</h1><div class="modindex-jumpbox"><a href="#cap-a"><strong>a</strong></a></div>
<table class="indextable modindextable"><tr><td><a href="library/abc.html"><code>abc</code></a></td>
<td><em>Abstract base classes according to PEP 3119.</em></td></tr></table></div></body></html>"""
SPHINX_SEARCH = b"""<html><head><title>Search</title></head><body><div class="body" role="main">
<h1 id="search-documentation">Search</h1><p>Searching for multiple words only shows matches that contain
all words.</p><form action="" method="get"><input type="text" name="q"/></form>
<div id="search-results"></div></div></body></html>"""


def make_pdf(*pages: list[str], password: str | None = None) -> bytes:
    """A PDF with one page per list of lines, whose text layer holds those lines (Helvetica), optionally encrypted."""
    writer = PdfWriter()
    font = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
    )
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
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
