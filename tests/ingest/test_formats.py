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


def test_an_articles_own_header_is_content_and_the_sites_header_is_not() -> None:
    """Docusaurus writes a page's title in its article's header; the site's header bar is still dropped."""
    html = b"""<html><head><title>Deploying | Acme Platform</title></head><body>
    <header class="navbar"><h1>Acme Platform</h1><a href="/">Docs</a></header>
    <main><article><header><h1>Deploying</h1></header>
    <p>Run make deploy from a clean checkout of main.</p></article></main></body></html>"""
    parsed = _parse("deploying.html", html)
    assert parsed.title == "Deploying"
    chunks = chunk_document(parsed, chunk_words=160)
    assert [(c.heading, c.text) for c in chunks] == [("Deploying", "Run make deploy from a clean checkout of main.")]


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


def test_a_page_without_a_breadcrumb_chunks_as_before() -> None:
    """No breadcrumb, no context: heading paths are the page's own, for HTML and the formats that have none."""
    html = b"<html><head><title>T</title></head><body><main><h1>T</h1><p>Body text.</p></main></body></html>"
    document = docx.Document()
    document.add_heading("Office Guide", level=1)
    document.add_paragraph("The printer on floor 3 is called Gutenberg.")
    buffer = io.BytesIO()
    document.save(buffer)
    pages = [
        _parse("t.html", html),
        _parse("guide.md", b"# Guide\n\n## Setup\n\nText.\n"),
        _parse("policy.pdf", make_pdf(["Travel policy", "Hotels up to 180 EUR per night."])),
        _parse("guide.docx", buffer.getvalue()),
    ]
    for parsed in pages:
        assert parsed.context == []
        chunks = chunk_document(parsed, chunk_words=160)
        assert chunks and all(c.heading.split(" > ")[0] == parsed.title for c in chunks)
    assert [c.heading for c in chunk_document(pages[1], chunk_words=160)] == ["Guide > Setup"]
    crumbed = chunk_document(Parsed(pages[1].title, pages[1].blocks, ["Handbook"]), chunk_words=160)
    assert [c.heading for c in crumbed] == ["Handbook > Guide > Setup"]


# Trimmed from what other generators write around a page's breadcrumb: each case is the page, the breadcrumb read
# from it (without the site's root, the page itself and side links) and labels that must not be indexed as text.
_RTD_PAGE = """<!DOCTYPE html><html class="writer-html5" lang="en"><head><meta charset="utf-8" />
<title>Module foo &mdash; Acme 2.1 documentation</title></head><body class="wy-body-for-nav">
<div class="wy-grid-for-nav">
<nav data-toggle="wy-nav-shift" class="wy-nav-side"><div class="wy-side-scroll"><div class="wy-side-nav-search">
<a href="index.html" class="icon icon-home">Acme</a></div><div class="wy-menu wy-menu-vertical" role="navigation"
aria-label="Navigation menu"><ul class="current"><li class="toctree-l1 current"><a class="reference internal"
href="api.html">API Reference</a></li></ul></div></div></nav>
<section data-toggle="wy-nav-shift" class="wy-nav-content-wrap"><div class="wy-nav-content"><div class="rst-content">
{breadcrumb}
<div role="main" class="document" itemscope="itemscope" itemtype="http://schema.org/Article">
<div itemprop="articleBody">
<section id="module-foo"><h1>Module foo<a class="headerlink" href="#module-foo" title="Link to this heading">\u00b6</a>
</h1><p>The foo module parses widget manifests.</p></section></div></div>
<footer><hr/><div role="contentinfo"><p>&#169; Copyright 2024, Acme.</p></div></footer></div></div></section></div>
</body></html>"""
_RTD_BREADCRUMB = """<div role="navigation" aria-label="Page navigation"><ul class="wy-breadcrumbs">
<li><a href="index.html" class="icon icon-home" aria-label="Home"></a></li>
<li class="breadcrumb-item"><a href="api.html">API Reference</a></li>
<li class="breadcrumb-item active">Module foo</li>
<li class="wy-breadcrumbs-aside"><a href="_sources/foo.rst.txt" rel="nofollow">View page source</a></li>
</ul><hr/></div>"""
_RTD_OLD_BREADCRUMB = """<div role="navigation" aria-label="breadcrumbs navigation"><ul class="wy-breadcrumbs">
<li><a href="index.html">Docs</a> &raquo;</li>
<li><a href="api.html">API Reference</a> &raquo;</li>
<li>Module foo</li>
<li class="wy-breadcrumbs-aside"><a href="_sources/foo.rst.txt" rel="nofollow"> View page source</a></li>
</ul><hr/></div>"""
_PYDATA_PAGE = """<!DOCTYPE html><html lang="en" data-content_root="../"><head><meta charset="utf-8" />
<title>IO tools &#8212; pandas 2.2.2 documentation</title></head>
<body data-bs-spy="scroll" data-bs-target=".bd-toc-nav">
<header class="bd-header navbar navbar-expand-lg bd-navbar"><div class="bd-header__inner bd-page-width">
<a class="navbar-brand logo" href="../index.html">pandas</a><ul class="bd-navbar-elements navbar-nav">
<li class="nav-item current active"><a class="nav-link nav-internal" href="index.html">User Guide</a></li>
</ul></div></header>
<div class="bd-container"><div class="bd-container__inner bd-page-width">
<div class="bd-sidebar-primary bd-sidebar"><nav class="bd-docs-nav bd-links" aria-label="Section Navigation">
<ul class="current nav bd-sidenav"><li class="toctree-l1 current active"><a class="current reference internal" href="#">
IO tools</a></li></ul></nav></div>
<main id="main-content" class="bd-main" role="main"><div class="bd-content"><div class="bd-article-container">
<div class="bd-header-article d-print-none"><div class="header-article-items header-article__inner">
<div class="header-article-items__start"><div class="header-article-item">
<nav aria-label="Breadcrumb" class="d-print-none"><ul class="bd-breadcrumbs">
<li class="breadcrumb-item breadcrumb-home"><a href="../index.html" class="nav-link" aria-label="Home">
<i class="fa-solid fa-home"></i></a></li>
<li class="breadcrumb-item"><a href="index.html" class="nav-link">User Guide</a></li>
<li class="breadcrumb-item active" aria-current="page">IO tools</li>
</ul></nav></div></div></div></div>
<article class="bd-article"><section id="io-tools"><h1>IO tools<a class="headerlink" href="#io-tools"
title="Link to this heading">#</a></h1><p>The pandas I/O API is a set of top level reader functions.</p></section>
</article></div></div></main></div></div><footer class="bd-footer">Created using Sphinx 7.3.7.</footer></body></html>"""
_MATERIAL_PAGE = """<!doctype html><html lang="en" class="no-js"><head><meta charset="utf-8">
<title>Installing the agent - Acme Handbook</title></head><body dir="ltr" data-md-color-scheme="default">
<header class="md-header" data-md-component="header"><nav class="md-header__inner md-grid" aria-label="Header">
<div class="md-header__title"><span class="md-ellipsis">Installing the agent</span></div></nav></header>
<div class="md-container" data-md-component="container"><main class="md-main" data-md-component="main">
<div class="md-main__inner md-grid"><div class="md-sidebar md-sidebar--primary" data-md-component="sidebar"
data-md-type="navigation"><nav class="md-nav md-nav--primary" aria-label="Navigation" data-md-level="0">
<ul class="md-nav__list"><li class="md-nav__item md-nav__item--active"><a href="./"
class="md-nav__link md-nav__link--active">Installing the agent</a></li></ul></nav></div>
<div class="md-content" data-md-component="content"><article class="md-content__inner md-typeset">
<nav class="md-path" aria-label="Navigation"><ol class="md-path__list">
<li class="md-path__item"><a href="../../" class="md-path__link"><span class="md-ellipsis">Setup</span></a></li>
<li class="md-path__item"><a href="../" class="md-path__link"><span class="md-ellipsis">Agents</span></a></li>
</ol></nav>
<h1 id="installing-the-agent">Installing the agent</h1><p>Download the package and run the installer.</p>
</article></div></div></main><footer class="md-footer">Made with Material for MkDocs</footer></div></body></html>"""
_DOCUSAURUS_PAGE = """<!doctype html><html lang="en" dir="ltr" class="docs-wrapper plugin-docs docs-doc-page"><head>
<meta charset="UTF-8"><title data-rh="true">Deploying | Acme Platform</title></head>
<body class="navigation-with-keyboard">
<div id="__docusaurus"><nav aria-label="Main" class="navbar navbar--fixed-top"><a class="navbar__brand" href="/">
Acme Platform</a></nav><div class="main-wrapper mainWrapper_z2l0"><div class="docsWrapper_hBAB">
<div class="docRoot_UBD9">
<aside class="theme-doc-sidebar-container docSidebarContainer_YfHR"><nav aria-label="Docs sidebar" class="menu">
<a class="menu__link" href="/docs/guides/deploying">Deploying</a></nav></aside>
<main class="docMainContainer_TBSr"><div class="container padding-top--md padding-bottom--lg"><div class="row">
<div class="col docItemCol_VOVn"><div class="docItemContainer_Djhp"><article>
<nav class="theme-doc-breadcrumbs breadcrumbsContainer_Z_bl" aria-label="Breadcrumbs"><ul class="breadcrumbs"
itemscope="" itemtype="https://schema.org/BreadcrumbList">
<li class="breadcrumbs__item"><a aria-label="Home page" class="breadcrumbs__link" href="/"><svg viewBox="0 0 24 24"
class="breadcrumbHomeIcon_YNFT"><path d="M10 19v-5h4v5" fill="currentColor"></path></svg></a></li>
<li itemscope="" itemprop="itemListElement" itemtype="https://schema.org/ListItem" class="breadcrumbs__item">
<span class="breadcrumbs__link" itemprop="name">Guides</span><meta itemprop="position" content="1"></li>
<li itemscope="" itemprop="itemListElement" itemtype="https://schema.org/ListItem"
class="breadcrumbs__item breadcrumbs__item--active"><span class="breadcrumbs__link" itemprop="name">Deploying</span>
<meta itemprop="position" content="2"></li></ul></nav>
<div class="theme-doc-markdown markdown"><h1>Deploying</h1><p>Releases go out from the main branch every weekday.</p>
</div></article></div></div></div></div></main></div></div></div></div></body></html>"""
_BOOTSTRAP_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Payments \u00b7 Acme Intranet</title></head><body>
<header class="navbar navbar-expand-lg bg-body-tertiary"><a class="navbar-brand" href="/">Acme Intranet</a></header>
<main class="container"><nav aria-label="breadcrumb"><ol class="breadcrumb">
<li class="breadcrumb-item"><a href="/">Home</a></li>
<li class="breadcrumb-item"><a href="/teams">Teams</a></li>
<li class="breadcrumb-item active" aria-current="page">Payments</li></ol></nav>
<h1>Payments</h1><p>The payments group owns checkout and refunds.</p></main></body></html>"""
_CONFLUENCE_PAGE = """<!DOCTYPE html><html><head><title>Engineering : Deploying the payments service</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head><body class="theme-default aui-theme-default">
<div id="page"><div id="main" class="aui-page-panel"><div id="main-header"><div id="breadcrumb-section">
<ol id="breadcrumbs"><li class="first"><span><a href="index.html">Engineering</a></span></li>
<li><span><a href="Runbooks_123.html">Runbooks</a></span></li></ol></div>
<h1 id="title-heading" class="pagetitle"><span id="title-text">Engineering : Deploying the payments service</span></h1>
</div><div id="content" class="view"><div class="page-metadata">Created by <span class="author"> Jane Doe</span>, last
modified on Mar 02, 2023</div><div id="main-content" class="wiki-content group"><h2 id="Deploying-Steps">Steps</h2>
<p>Tag the release, then promote the build from staging.</p></div></div></div>
<div id="footer" role="contentinfo"><section class="footer-body"><p>Document generated by Confluence on Mar 02, 2023
</p></section></div></div></body></html>"""
# A bare breadcrumb list inside the page's main container (not in a nav the page drops anyway), and deep: the
# innermost four parents are kept.
_DEEP_INTRANET_PAGE = """<html><head><title>On-call rota</title></head><body><div id="content">
<ol class="breadcrumb"><li><a href="/">Home</a> /</li><li><a href="/org">Organisation</a> /</li>
<li><a href="/org/eng">Engineering</a> /</li><li><a href="/org/eng/platform">Platform</a> /</li>
<li><a href="/org/eng/platform/ops">Operations</a> /</li><li><a href="/org/eng/platform/ops/sre">SRE</a> /</li>
<li class="current">On-call rota</li></ol>
<h1>On-call rota</h1><p>Each engineer is on call for one week at a time.</p></div></body></html>"""


@pytest.mark.parametrize(
    ("page", "context", "unindexed"),
    [
        pytest.param(
            _RTD_PAGE.replace("{breadcrumb}", _RTD_BREADCRUMB),
            ["API Reference"],
            ["API Reference", "View page source"],
            id="sphinx_rtd_theme",
        ),
        pytest.param(
            _RTD_PAGE.replace("{breadcrumb}", _RTD_OLD_BREADCRUMB),
            ["API Reference"],
            ["API Reference", "Docs", "View page source"],
            id="sphinx_rtd_theme-old",
        ),
        pytest.param(_PYDATA_PAGE, ["User Guide"], ["User Guide"], id="pydata-sphinx-theme"),
        pytest.param(_MATERIAL_PAGE, ["Setup", "Agents"], ["Setup", "Agents"], id="mkdocs-material"),
        pytest.param(_DOCUSAURUS_PAGE, ["Guides"], ["Guides"], id="docusaurus"),
        pytest.param(_BOOTSTRAP_PAGE, ["Teams"], ["Home", "Teams"], id="bootstrap"),
        pytest.param(_CONFLUENCE_PAGE, ["Engineering", "Runbooks"], ["Runbooks"], id="confluence-export"),
        pytest.param(
            _DEEP_INTRANET_PAGE,
            ["Engineering", "Platform", "Operations", "SRE"],
            ["Home", "Organisation", "Engineering", "Platform", "Operations", "SRE"],
            id="intranet-deep",
        ),
    ],
)
def test_breadcrumbs_of_other_generators_become_the_context(
    page: str, context: list[str], unindexed: list[str]
) -> None:
    parsed = _parse("page.html", page.encode())
    assert parsed.context == context
    text = "\n".join(b.text for b in parsed.blocks if b.kind != "heading")
    assert text  # the page's own text is kept
    assert [label for label in unindexed if label in text] == []


def test_lists_and_navs_without_breadcrumb_markers_are_not_the_breadcrumb() -> None:
    """Only an element marked as a breadcrumb is read: not a content list, a table of contents or a related-links
    box before it, nor a page wrapper whose class merely mentions breadcrumbs."""
    page = b"""<html><head><title>Rotating keys</title></head><body><div class="layout has-breadcrumbs">
    <nav aria-label="Table of contents"><ul><li><a href="#before">Before you start</a></li></ul></nav>
    <div class="related-links"><ul><li><a href="/vpn">VPN access</a></li></ul></div>
    <main><ol><li>Create the new key.</li><li>Revoke the old one.</li></ol>
    <ol class="breadcrumb"><li><a href="/">Home</a></li><li><a href="/security">Security</a></li></ol>
    <h1>Rotating keys</h1><p>Keys are rotated every ninety days.</p></main></div></body></html>"""
    parsed = _parse("keys.html", page)
    assert parsed.context == ["Security"]
    text = "\n".join(b.text for b in parsed.blocks if b.kind != "heading")
    assert "- Create the new key." in text and "- Revoke the old one." in text


def test_breadcrumb_look_alikes_nested_menus_and_odd_labels() -> None:
    # A wrapper whose class mentions breadcrumbs holds the page's content: it is not the breadcrumb.
    wrapper = b"""<html><head><title>Keys</title></head><body><main><div class="page has-breadcrumbs">
    <ol class="crumbs"><li><a href="/">Home</a></li><li><a href="/sec">Security</a></li></ol>
    <h3>Rotating keys</h3><p>Keys are rotated every ninety days.</p>
    <ul><li>Create the new key.</li><li>Revoke the old one.</li></ul></div></main></body></html>"""
    parsed = _parse("keys.html", wrapper)
    assert parsed.context == []
    assert "Keys are rotated every ninety days." in "\n".join(b.text for b in parsed.blocks)
    # A dropdown of sibling pages inside a breadcrumb item is not more parents.
    dropdown = b"""<html><head><title>Payments</title></head><body><nav aria-label="breadcrumb"><ol class="breadcrumb">
    <li class="breadcrumb-item"><a href="/teams">Teams</a><ul class="dropdown-menu"><li><a href="/b">Billing</a></li>
    <li><a href="/s">Search</a></li><li><a href="/i">Infra</a></li></ul></li>
    <li class="breadcrumb-item active" aria-current="page">Payments</li></ol></nav>
    <main><h1>Payments</h1><p>The payments team owns checkout.</p></main></body></html>"""
    assert _parse("payments.html", dropdown).context == ["Teams"]
    # Another site's "related" box before the real breadcrumb is not Sphinx's bar.
    related = b"""<html><head><title>Post</title></head><body><div class="related"><ul><li><a href="/o">Other post</a>
    </li></ul></div><main><nav aria-label="breadcrumb"><ol><li><a href="/blog">Blog</a></li><li><a href="/ops">Ops</a>
    </li><li aria-current="page">Post</li></ol></nav><h1>Post</h1><p>Text of the post.</p></main></body></html>"""
    parsed = _parse("post.html", related)
    assert parsed.context == ["Blog", "Ops"]
    assert "Ops" not in "\n".join(b.text for b in parsed.blocks if b.kind != "heading")
    # Labels that merely contain "home" or "current" do not drop a parent; a title over several lines still names
    # the page, so its own (unmarked) entry is dropped.
    labels = b"""<html><head><title>
      Module foo
      &mdash; Acme docs</title></head><body><nav aria-label="Breadcrumbs"><ul>
    <li><a href="/" class="icon icon-home" aria-label="Home"></a></li>
    <li><a href="/brew" aria-label="Homebrew packages">Homebrew</a></li>
    <li><a href="/sec" aria-label="Go to the current section">Packaging</a></li>
    <li>Module foo</li></ul></nav><main><h1>Module foo</h1><p>Text.</p></main></body></html>"""
    assert _parse("foo.html", labels).context == ["Homebrew", "Packaging"]


def test_an_article_header_is_a_block_of_its_own() -> None:
    html = b"""<html><head><title>Deploying | Acme</title></head><body><main>
    <header class="site-header" role="banner"><h1>Acme</h1></header>
    <article><header><h1>Deploying</h1></header>Run make deploy.<br>Then wait.</article></main></body></html>"""
    parsed = _parse("deploying.html", html)
    assert parsed.title == "Deploying"
    assert [(b.kind, b.text) for b in parsed.blocks] == [
        ("heading", "Deploying"),
        ("text", "Run make deploy."),
        ("text", "Then wait."),
    ]
    assert [c.heading for c in chunk_document(parsed, chunk_words=160)] == ["Deploying"]


def test_directory_walk_skips_build_assets_and_hidden_files(tmp_path: Path) -> None:
    for name in ("guide.md", "_static/jquery.js", "_sources/guide.rst.txt", ".git/config.md", "logo.png", "app.py"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# x\n\ntext\n")
    found = load_path(str(tmp_path), max_bytes=10_000)
    items = list(found.items)
    assert sorted(Path(i.source).name for i in items) == ["app.py", "guide.md"]
    assert [Path(s).name for s in found.skipped] == ["logo.png"]
