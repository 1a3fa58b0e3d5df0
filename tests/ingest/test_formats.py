"""Each format's parser keeps structure: headings become the heading path, code stays whole, pages and
tables keep their text. Parsers only (no database)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import docx
import pytest

from ingest.chunking import chunk_document
from ingest.document import NotContent, Parsed, RawDocument
from ingest.loaders.files import PARSERS, load_path
from tests.ingest.helpers import SPHINX_GENINDEX, SPHINX_MODINDEX, SPHINX_SEARCH, make_pdf


def _parse(name: str, data: bytes) -> Parsed:
    parser: Callable[[RawDocument], Parsed] = PARSERS[Path(name).suffix]
    return parser(RawDocument(uri=f"file:///docs/{name}", source=name, source_kind="file", data=data, parse=parser))


def test_pdf_pages_become_sections() -> None:
    parsed = _parse("policy.pdf", make_pdf(["Travel policy", "Hotels up to 180 EUR per night."]))
    chunks = chunk_document(parsed, chunk_words=160)
    assert [c.heading for c in chunks] == ["policy > Page 1"]
    assert "Hotels up to 180 EUR per night." in chunks[0].text


def test_pdf_blocks_know_their_page() -> None:
    parsed = _parse("policy.pdf", make_pdf(["Travel policy"], ["Hotels up to 180 EUR per night."]))
    assert [(b.kind, b.page) for b in parsed.blocks] == [("heading", 1), ("text", 1), ("heading", 2), ("text", 2)]
    assert "Hotels" in parsed.blocks[3].text


def test_docx_headings_and_tables() -> None:
    document = docx.Document()
    document.add_heading("Office Guide", level=1)
    document.add_heading("Printers", level=2)
    document.add_paragraph("The printer on floor 3 is called Gutenberg.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Room", "Capacity"
    table.cell(1, 0).text, table.cell(1, 1).text = "Elbe", "12"
    buffer = io.BytesIO()
    document.save(buffer)
    chunks = chunk_document(_parse("guide.docx", buffer.getvalue()), chunk_words=160)
    assert [c.heading for c in chunks] == ["Office Guide > Printers"]
    assert chunks[0].text == "The printer on floor 3 is called Gutenberg.\n\nRoom | Capacity\nElbe | 12"


def test_sphinx_page_keeps_the_body_only() -> None:
    html = b"""<html><head><title>json - JSON encoder</title><script>var x=1;</script></head><body>
    <div class="related" role="navigation"><a href="index.html">index</a> modules | next</div>
    <div class="sphinxsidebar" role="navigation"><h3>Table of Contents</h3><p>Quick search</p></div>
    <div class="document"><div class="body" role="main">
      <section id="json"><h1>json \xe2\x80\x94 JSON encoder<a class="headerlink" href="#json">\xc2\xb6</a></h1>
      <p>Use <code>json.dumps()</code> to serialise.</p>
      <section id="basic"><h2>Basic usage<a class="headerlink" href="#basic">\xc2\xb6</a></h2>
      <div class="highlight"><pre>import json
json.dumps({"a": 1})
</pre></div></section></section></div></div>
    <div class="footer">&copy; Copyright 2001 Python Software Foundation.</div></body></html>"""
    chunks = chunk_document(_parse("json.html", html), chunk_words=160)
    assert [(c.heading, c.text) for c in chunks] == [
        ("json \u2014 JSON encoder", "Use json.dumps() to serialise."),
        ("json \u2014 JSON encoder > Basic usage", '```\nimport json\njson.dumps({"a": 1})\n```'),
    ]


def test_generated_index_and_search_pages_are_not_content() -> None:
    """A documentation site's generated index and search pages only point at other pages: skipped, with a reason
    (NotContent, which the pipeline counts as skipped rather than failed)."""
    for name, page in [("genindex-A.html", SPHINX_GENINDEX), ("py-modindex.html", SPHINX_MODINDEX),
                       ("search.html", SPHINX_SEARCH)]:  # fmt: skip
        with pytest.raises(NotContent, match="generated index or search page"):
            _parse(name, page)
    # A content page with an ordinary table is still content.
    table = b"""<html><body><div class="body" role="main"><h1>Ports</h1>
    <table class="docutils"><tr><td>WireGuard</td><td>UDP 51820</td></tr></table></div></body></html>"""
    assert "WireGuard | UDP 51820" in chunk_document(_parse("ports.html", table), chunk_words=160)[0].text


def test_a_sphinx_table_of_contents_is_navigation() -> None:
    """A toctree lists other pages by title: dropped like a sidebar. A page that is nothing else (Sphinx's
    contents.html) is skipped as NotContent; a section's landing page keeps its own prose."""
    toctree = b"""<div class="toctree-wrapper compound"><ul>
    <li class="toctree-l1"><a class="reference internal" href="pathlib.html">pathlib \xe2\x80\x94 Object-oriented
    filesystem paths</a></li><li class="toctree-l1"><a href="shutil.html">shutil \xe2\x80\x94 High-level file
    operations</a></li></ul></div>"""
    contents = b'<html><body><div class="body" role="main"><h1>Contents</h1>' + toctree + b"</div></body></html>"
    with pytest.raises(NotContent, match="table of contents"):
        _parse("contents.html", contents)
    landing = (
        b'<html><body><div class="body" role="main"><h1>File and Directory Access</h1>'
        b"<p>The modules described in this chapter deal with disk files and directories.</p>"
        + toctree
        + b"</div></body></html>"
    )
    chunks = chunk_document(_parse("filesys.html", landing), chunk_words=160)
    assert [(c.heading, c.text) for c in chunks] == [
        ("File and Directory Access", "The modules described in this chapter deal with disk files and directories.")
    ]


def test_long_code_block_splits_only_between_lines() -> None:
    lines = [f"result_{i} = compute(alpha_{i}, beta_{i}, gamma_{i})  # step {i}" for i in range(200)]
    text = "# Script\n\n```python\n" + "\n".join(lines) + "\n```\n"
    chunks = chunk_document(_parse("script.md", text.encode()), chunk_words=120)
    assert len(chunks) > 3
    rebuilt = []
    for chunk in chunks:
        assert chunk.heading == "Script"
        assert chunk.text.startswith("```\n") and chunk.text.endswith("\n```")
        assert len(chunk.text.split()) <= 120
        rebuilt.extend(chunk.text[4:-4].split("\n"))
    assert rebuilt == lines


def test_long_prose_is_sized_for_the_embedder() -> None:
    sentences = " ".join(f"Sentence {i} explains one more detail of the billing pipeline." for i in range(120))
    chunks = chunk_document(
        _parse("billing.md", f"# Billing\n\n## Pipeline\n\n{sentences}\n".encode()), chunk_words=160
    )
    assert len(chunks) >= 6
    for chunk in chunks:
        assert len(chunk.embed_input.split()) <= 160
        assert chunk.text.endswith("pipeline.")  # split at sentence ends, never mid-sentence


# Trimmed from what Sphinx writes for the Python docs' c-api/file.html: the `related` bar, top and bottom.
_SPHINX_NESTED_PAGE = b"""<html><head><title>File Objects</title></head><body>
<div class="related" role="navigation"><h3>Navigation</h3><ul>
  <li class="right"><a href="../genindex.html">index</a></li>
  <li class="right"><a href="module.html">next</a> |</li>
  <li><a href="https://www.python.org/">Python</a> &#187;</li>
  <li class="nav-item nav-item-0"><a href="../index.html">3.11.2 Documentation</a> &#187;</li>
  <li class="nav-item nav-item-1"><a href="index.html">Python/C API Reference Manual</a> &#187;</li>
  <li class="nav-item nav-item-2"><a href="concrete.html" accesskey="U">Concrete Objects Layer</a> &#187;</li>
  <li class="nav-item nav-item-this"><a href="">File Objects</a></li></ul></div>
<div class="document"><div class="body" role="main"><section id="file-objects">
  <h1>File Objects<a class="headerlink" href="#file-objects">\xc2\xb6</a></h1>
  <p>These APIs are a minimal emulation of the Python 2 C API for built-in file objects.</p>
  <section id="more"><h2>Reading</h2><p>PyFile_GetLine reads one line.</p></section></section></div></div>
<div class="related" role="navigation"><ul>
  <li class="nav-item nav-item-0"><a href="../index.html">3.11.2 Documentation</a> &#187;</li>
  <li class="nav-item nav-item-1"><a href="index.html">Python/C API Reference Manual</a> &#187;</li>
  <li class="nav-item nav-item-this"><a href="">File Objects</a></li></ul></div></body></html>"""


def test_a_sphinx_breadcrumb_leads_every_heading_path_outside_the_word_budget() -> None:
    parsed = _parse("file.html", _SPHINX_NESTED_PAGE)
    # The site's root and the page itself are left out; the bottom bar (a copy) is not read twice.
    assert parsed.context == ["Python/C API Reference Manual", "Concrete Objects Layer"]
    chunks = chunk_document(parsed, chunk_words=160)
    crumb = "Python/C API Reference Manual > Concrete Objects Layer"
    assert [(c.heading, c.text) for c in chunks] == [
        (
            f"{crumb} > File Objects",
            "These APIs are a minimal emulation of the Python 2 C API for built-in file objects.",
        ),
        (f"{crumb} > File Objects > Reading", "PyFile_GetLine reads one line."),
    ]
    # Passages are cut where they would be without the breadcrumb: it is context, not part of the word budget.
    sentences = " ".join(f"Step {i} of reading a file object is described here." for i in range(60))
    long_page = _SPHINX_NESTED_PAGE.replace(b"PyFile_GetLine reads one line.", sentences.encode())
    with_crumb = chunk_document(_parse("file.html", long_page), chunk_words=40)
    without = chunk_document(Parsed(parsed.title, _parse("file.html", long_page).blocks), chunk_words=40)
    assert len(with_crumb) > 3
    assert [c.text for c in with_crumb] == [c.text for c in without]


def test_a_page_without_a_breadcrumb_has_no_context() -> None:
    assert _parse("guide.md", b"# Guide\n\nText.\n").context == []
    html = b"<html><head><title>T</title></head><body><main><h1>T</h1><p>Body text.</p></main></body></html>"
    assert _parse("t.html", html).context == []


def test_directory_walk_skips_build_assets_and_hidden_files(tmp_path: Path) -> None:
    for name in ("guide.md", "_static/jquery.js", "_sources/guide.rst.txt", ".git/config.md", "logo.png", "app.py"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# x\n\ntext\n")
    found = load_path(str(tmp_path), max_bytes=10_000)
    items = list(found.items)
    assert sorted(Path(i.source).name for i in items) == ["app.py", "guide.md"]
    assert [Path(s).name for s in found.skipped] == ["logo.png"]
