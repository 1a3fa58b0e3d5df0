"""Formats to blocks: Markdown (markdown-it), reStructuredText (docutils), HTML (lxml, trafilatura as fallback),
PDF (pypdf), DOCX (python-docx), plain text and source code. Each raises SourceError with a clear reason."""

from __future__ import annotations

import io
import re
from pathlib import PurePosixPath

from ingest.document import Block, NotContent, Parsed, RawDocument, SourceError

# A "line" longer than this is not prose: minified or generated content that would make useless chunks.
MAX_LINE_CHARS = 1_000_000
_SNIFF = 8192
_WS = re.compile(r"[ \t\r\f\v]+")


def decode_text(data: bytes) -> str:
    """Strict UTF-8 text, refusing binary data, empty files and absurdly long lines with a reason."""
    head = data[:_SNIFF]
    if b"\x00" in head:
        raise SourceError("binary file (contains NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        raise SourceError(f"not valid UTF-8 text (byte 0x{bad} at offset {exc.start})") from None
    if not text.strip():
        raise SourceError("empty file: nothing to index")
    longest = max(len(line) for line in text.split("\n"))
    if longest > MAX_LINE_CHARS:
        raise SourceError(f"a single line of {longest / 1e6:.1f} million characters: not a text document")
    control = sum(1 for ch in text[:_SNIFF] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if control > len(text[:_SNIFF]) * 0.1:
        raise SourceError("binary file (mostly control characters), not text")
    return text


def _stem_title(raw: RawDocument) -> str:
    if raw.title_hint:
        return raw.title_hint
    name = PurePosixPath(raw.uri.rstrip("/")).name or raw.uri
    return name.rsplit(".", 1)[0].replace("-", " ").replace("_", " ").strip() or name


def _first_heading(blocks: list[Block]) -> str:
    return next((b.text for b in blocks if b.kind == "heading"), "")


# -- Markdown -----------------------------------------------------------------------------------------


def parse_markdown(raw: RawDocument) -> Parsed:
    return markdown_to_parsed(decode_text(raw.data), _stem_title(raw))


def markdown_to_parsed(text: str, fallback_title: str) -> Parsed:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    lines = text.split("\n")
    blocks: list[Block] = []
    tokens = md.parse(text)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.level != 0 or token.map is None:
            index += 1
            continue
        if token.type == "heading_open":
            inline = tokens[index + 1]
            blocks.append(Block("heading", inline.content.strip(), int(token.tag[1:])))
        elif token.type in ("fence", "code_block"):
            blocks.append(Block("code", token.content.rstrip("\n")))
        elif token.type != "hr":
            start, end = token.map
            chunk = "\n".join(lines[start:end]).strip()
            if chunk:
                blocks.append(Block("text", chunk))
        index += 1
    return Parsed(_first_heading(blocks) or fallback_title, blocks)


# -- reStructuredText ---------------------------------------------------------------------------------


def parse_rst(raw: RawDocument) -> Parsed:
    from docutils import nodes
    from docutils.core import publish_doctree
    from docutils.utils import SystemMessage

    text = decode_text(raw.data)
    try:
        tree = publish_doctree(
            text,
            settings_overrides={
                "report_level": 5,
                "halt_level": 5,
                "file_insertion_enabled": False,
                "raw_enabled": False,
                "_disable_config": True,
            },
        )
    except (SystemMessage, ValueError, IndexError, AttributeError) as exc:
        raise SourceError(f"invalid reStructuredText: {exc}") from None
    blocks: list[Block] = []
    skip = (nodes.system_message, nodes.comment, nodes.substitution_definition, nodes.target, nodes.title)

    def walk(node: nodes.Element, depth: int) -> None:
        for child in node.children:
            if isinstance(child, nodes.section):
                title = child.next_node(nodes.title)
                if title is not None:
                    blocks.append(Block("heading", title.astext().strip(), depth + 1))
                walk(child, depth + 1)
            elif isinstance(child, skip):
                continue
            elif isinstance(child, nodes.literal_block):
                blocks.append(Block("code", child.astext().rstrip("\n")))
            elif isinstance(child, (nodes.bullet_list, nodes.enumerated_list)):
                items = ["- " + " ".join(item.astext().split()) for item in child.children]
                blocks.append(Block("text", "\n".join(items)))
            elif isinstance(child, nodes.Element):
                body = child.astext().strip()
                if body:
                    blocks.append(Block("text", body))

    title = tree.get("title") or ""
    if title:
        blocks.append(Block("heading", str(title), 1))
    walk(tree, 1 if title else 0)
    return Parsed(str(title) or _first_heading(blocks) or _stem_title(raw), blocks)


# -- HTML ---------------------------------------------------------------------------------------------

# lxml (libxml2) silently drops everything nested deeper than 255 levels: refuse instead of losing text.
MAX_HTML_DEPTH = 250
# The most a DOCX may inflate to: real documents' XML is a few MB even for hundreds of pages.
MAX_DOCX_EXPANDED_BYTES = 100_000_000
_DROP_TAGS = ("script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside", "form", "iframe")
_DROP_XPATH = (
    "//*[@role='navigation' or @role='banner' or @role='contentinfo' or @role='search']"
    " | //a[contains(concat(' ', @class, ' '), ' headerlink ')]"
    " | //*[contains(concat(' ', @class, ' '), ' sphinxsidebar ') or contains(concat(' ', @class, ' '), ' related ')"
    " or contains(concat(' ', @class, ' '), ' md-sidebar ') or contains(concat(' ', @class, ' '), ' md-header ')"
    " or contains(concat(' ', @class, ' '), ' md-footer ') or contains(concat(' ', @class, ' '), ' footer ')]"
)
# Pages a documentation generator writes that only point at other pages: Sphinx's general and module indexes
# (genindex*.html, py-modindex.html: tables of links) and search pages (Sphinx, MkDocs). Their text is a list of
# names that full-text search matches for almost any question, while the pages they point at hold the content.
_GENERATED_PAGE_XPATH = (
    "//table[contains(concat(' ', @class, ' '), ' indextable ')]"
    " | //*[contains(concat(' ', @class, ' '), ' genindex-jumpbox ')"
    " or contains(concat(' ', @class, ' '), ' modindex-jumpbox ')]"
    " | //*[@id='search-results' or @id='mkdocs-search-results']"
)
# A Sphinx table of contents (the `toctree` directive): links to other pages under their titles, which those
# pages carry themselves. The Python docs' contents.html is nothing else (236 passages of titles, which ranked
# first for questions its linked pages answer); a section's landing page keeps its own prose.
_TOCTREE_XPATH = "//div[contains(concat(' ', @class, ' '), ' toctree-wrapper ')]"
_MAIN_XPATHS = (
    "//main",
    "//*[@role='main']",
    "//article",
    "//div[contains(concat(' ', @class, ' '), ' body ')]",
    "//div[contains(concat(' ', @class, ' '), ' md-content ')]",
    "//*[@id='content']",
)
# A page's breadcrumb (its parent sections, outermost first), as documentation generators and intranet templates
# write it: Sphinx's `related` bar, or an element marked as a breadcrumb by its aria-label (Bootstrap, Docusaurus,
# pydata-sphinx-theme), a class (Read the Docs' wy-breadcrumbs, ol.breadcrumb), an id (Confluence's HTML export)
# or MkDocs Material's navigation path. The first in document order is read, item by item (_breadcrumb).
_SPHINX_RELATED = "contains(concat(' ', normalize-space(@class), ' '), ' related ')"
_BREADCRUMB_XPATH = (
    f"//div[{_SPHINX_RELATED}]"
    " | //*[self::nav or self::div or self::ol or self::ul]["
    "translate(normalize-space(@aria-label), 'BREADCUMS', 'breadcums') = 'breadcrumb'"
    " or translate(normalize-space(@aria-label), 'BREADCUMS', 'breadcums') = 'breadcrumbs'"
    " or contains(translate(@class, 'BREADCUM', 'breadcum'), 'breadcrumb')"
    " or @id = 'breadcrumbs' or @id = 'breadcrumb-section']"
    " | //nav[contains(concat(' ', normalize-space(@class), ' '), ' md-path ')]"
)
# An element marked as a breadcrumb that holds any of these is a page wrapper (`<div class="has-breadcrumbs">`),
# not the breadcrumb itself: a breadcrumb holds links, never paragraphs or headings.
_PAGE_CONTENT_XPATH = (
    ".//*[self::main or self::article or self::section or self::p or self::h1 or self::h2 or self::h3 or self::h4"
    " or self::h5 or self::h6 or self::pre or self::table or self::dl or self::blockquote]"
)
# Sphinx's bar also holds the index, next and previous links: its breadcrumb items are the `nav-item` ones.
_SPHINX_ITEM_XPATH = ".//li[contains(concat(' ', normalize-space(@class), ' '), ' nav-item ')]"
# Items that are the page itself, the site's root or a side link (View page source, Edit on GitHub), by their
# class names (whole names) or aria-label.
_CURRENT_CLASSES = frozenset({"active", "current", "nav-item-this", "breadcrumbs__item--active"})
_HOME_CLASS = re.compile(r"(?:^|[-_])home(?:$|[-_])")  # breadcrumb-home, icon-home, fa-home, home
_ROOT_NAMES = frozenset({"home", "home page", "docs", "documentation"})
_CRUMB_SEPARATORS = " \u00bb\u203a>/|\u00b7"
_TITLE_SEPARATORS = re.compile(r" (?:\u2014|\u2013|-|\||\u00b7) ")
# Kept at most (the innermost ones): the breadcrumb says where a passage is, not the whole site map.
MAX_BREADCRUMB = 4
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "ul", "ol", "li", "dl", "dt", "dd", "blockquote", "pre", "table",
    "figure", "figcaption", "details", "summary", "hr", "body", "header", *_HEADINGS,
}  # fmt: skip


def parse_html(raw: RawDocument) -> Parsed:
    if not raw.data.strip():
        raise SourceError("empty file: nothing to index")
    if b"\x00" in raw.data[:_SNIFF]:
        raise SourceError("binary file (contains NUL bytes), not HTML")
    return html_to_parsed(raw.data, _stem_title(raw))


_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def html_encoding(data: bytes) -> str:
    """The page's declared charset, else UTF-8 when it decodes as such (libxml2 would guess Latin-1)."""
    declared = _META_CHARSET.search(data[:4096])
    if declared:
        return declared.group(1).decode("ascii").lower()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "windows-1252"
    return "utf-8"


def _max_depth(root: object) -> int:
    from lxml import etree

    depth = deepest = 0
    for event, _element in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        deepest = max(deepest, depth)
    return deepest


def _clean(text: str) -> str:
    return "\n".join(line for line in (_WS.sub(" ", part).strip() for part in text.split("\n")) if line)


def html_to_parsed(data: bytes, fallback_title: str) -> Parsed:
    import lxml.html
    from lxml import etree

    try:
        doc = lxml.html.document_fromstring(data, parser=lxml.html.HTMLParser(encoding=html_encoding(data)))
    except (etree.ParserError, ValueError, LookupError) as exc:
        raise SourceError(f"cannot parse HTML: {exc}") from None
    if _max_depth(doc) >= MAX_HTML_DEPTH:
        raise SourceError(f"HTML nested more than {MAX_HTML_DEPTH} levels deep: refusing (the parser would drop text)")
    if doc.xpath(_GENERATED_PAGE_XPATH):
        raise NotContent("a generated index or search page (links to other pages): skipped")
    page_title = _clean(doc.findtext(".//title") or "")
    breadcrumb = _breadcrumb(doc, page_title)
    tables_of_contents = doc.xpath(_TOCTREE_XPATH)
    for element in doc.xpath(_DROP_XPATH) + tables_of_contents + [e for tag in _DROP_TAGS for e in doc.iter(tag)]:
        if element.getparent() is not None and not _is_content_header(element):
            element.drop_tree()
    main = next((found[0] for xp in _MAIN_XPATHS if (found := doc.xpath(xp))), None)
    if main is None:
        return _html_fallback(data, page_title or fallback_title, breadcrumb)
    blocks: list[Block] = []
    _walk_html(main, blocks)
    if not any(b.kind != "heading" for b in blocks):
        if tables_of_contents:
            raise NotContent("a table of contents (links to other pages): skipped")
        raise SourceError("no text content in the HTML page")
    title = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), "") or page_title or fallback_title
    return Parsed(title, blocks, breadcrumb)


def _is_content_header(element: object) -> bool:
    """An article's own header (Docusaurus writes `<article><header><h1>`) holds its title: content, unlike a
    site's header bar (outside the article, or role="banner")."""
    return bool(
        element.tag == "header"  # type: ignore[attr-defined]
        and element.get("role") != "banner"  # type: ignore[attr-defined]
        and element.xpath("ancestor::article")  # type: ignore[attr-defined]
        and element.xpath(".//*[self::h1 or self::h2 or self::h3]")  # type: ignore[attr-defined]
    )


def _html_fallback(data: bytes, title: str, context: list[str]) -> Parsed:
    """Pages without a main/article container: trafilatura's boilerplate removal, read back as Markdown."""
    import trafilatura

    extracted = trafilatura.extract(
        data.decode("utf-8", errors="replace"),
        output_format="markdown",
        include_formatting=True,
        include_tables=True,
        include_comments=False,
        favor_recall=True,
    )
    if not extracted or not extracted.strip():
        raise SourceError("no text content in the HTML page")
    parsed = markdown_to_parsed(extracted, title)
    return Parsed(title or parsed.title, parsed.blocks, context)


def _breadcrumb(doc: object, page_title: str) -> list[str]:
    """The page's breadcrumb without the site's root, the page itself and side links, outermost first; its element
    is removed so its words are not indexed as the page's text. Called before anything else is dropped."""
    element, sphinx = None, False
    for found in doc.xpath(_BREADCRUMB_XPATH):  # type: ignore[attr-defined]
        if found.xpath(f"self::div[{_SPHINX_RELATED}]"):
            if found.xpath(_SPHINX_ITEM_XPATH):  # a "related" box of another site is not Sphinx's bar
                element, sphinx = found, True
                break
        elif not found.xpath(_PAGE_CONTENT_XPATH):
            element = found
            break
    if element is None:
        return []
    title = " ".join(page_title.split())
    titles = {title, _TITLE_SEPARATORS.split(title, maxsplit=1)[0]}
    for h1 in doc.iter("h1"):  # type: ignore[attr-defined]
        titles.add(" ".join(h1.text_content().split()).rstrip(" \u00b6#\u200b"))
    not_parents = {name.casefold() for name in titles if name} | _ROOT_NAMES
    names = []
    for item in element.xpath(_SPHINX_ITEM_XPATH if sphinx else ".//li"):
        if _nested_item(item, element):
            continue  # a dropdown of sibling pages inside a breadcrumb item is not more parents
        name = " ".join(_item_text(item).split()).strip(_CRUMB_SEPARATORS)
        tokens = {token for c in item.xpath("descendant-or-self::*/@class") for token in c.lower().split()}
        labels = {" ".join(label.lower().split()) for label in item.xpath("descendant-or-self::*/@aria-label")}
        current = bool(item.xpath("descendant-or-self::*[@aria-current='page']")) or bool(_CURRENT_CLASSES & tokens)
        home = "nav-item-0" in tokens or bool(labels & _ROOT_NAMES) or any(_HOME_CLASS.search(t) for t in tokens)
        aside = any("aside" in token for token in tokens)
        if name and not (current or home or aside or name.casefold() in not_parents):
            names.append(name)
    if element.getparent() is not None:
        element.drop_tree()
    return names[-MAX_BREADCRUMB:]


def _nested_item(item: object, container: object) -> bool:
    """Whether a list item sits inside another list item of the container."""
    for ancestor in item.iterancestors():  # type: ignore[attr-defined]
        if ancestor is container:
            return False
        if ancestor.tag == "li":
            return True
    return False


def _item_text(element: object) -> str:
    """A breadcrumb item's own text: without a list nested in it (its items are read in turn) or an icon's."""
    parts = [element.text or ""]  # type: ignore[attr-defined]
    for child in element:  # type: ignore[attr-defined]
        if isinstance(child.tag, str) and child.tag not in ("ul", "ol", "svg", "script", "style", "template"):
            parts.append(_item_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _walk_html(element: object, blocks: list[Block]) -> None:
    tag = getattr(element, "tag", None)
    if not isinstance(tag, str):
        return
    text_content = element.text_content  # type: ignore[attr-defined]
    if tag in _HEADINGS:
        heading = _clean(text_content()).replace("\n", " ")
        if heading:
            blocks.append(Block("heading", heading, _HEADINGS[tag]))
        return
    if tag == "pre":
        code = text_content().rstrip("\n")
        if code.strip():
            blocks.append(Block("code", code))
        return
    if tag == "table":
        rows = []
        for row in element.iter("tr"):  # type: ignore[attr-defined]
            cells = [_clean(cell.text_content()).replace("\n", " ") for cell in row if isinstance(cell.tag, str)]
            if any(cells):
                rows.append(" | ".join(cells))
        if rows:
            blocks.append(Block("text", "\n".join(rows)))
        return
    children = [child for child in element if isinstance(child.tag, str)]  # type: ignore[attr-defined]
    if not any(child.tag in _BLOCK_TAGS for child in children):
        body = _clean(text_content())
        if body:
            blocks.append(Block("text", ("- " + body) if tag == "li" else body))
        return
    own = _clean(element.text or "")  # type: ignore[attr-defined]
    if own:
        blocks.append(Block("text", own))
    for child in children:
        _walk_html(child, blocks)
        tail = _clean(child.tail or "")
        if tail:
            blocks.append(Block("text", tail))


# -- PDF and DOCX -------------------------------------------------------------------------------------


def parse_pdf(raw: RawDocument) -> Parsed:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    if not raw.data:
        raise SourceError("empty file: nothing to index")
    try:
        reader = PdfReader(io.BytesIO(raw.data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SourceError("password-protected PDF: cannot read it without the password")
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").strip()
            if text:
                blocks.append(Block("heading", f"Page {number}", 2, page=number))
                blocks.append(Block("text", text, page=number))
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except SourceError:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise SourceError(f"corrupt or truncated PDF: {exc}") from None
    if not blocks:
        raise SourceError("PDF has no extractable text (scanned images?)")
    return Parsed(str(meta_title).strip() or _stem_title(raw), blocks)


def parse_docx(raw: RawDocument) -> Parsed:
    import zipfile

    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        with zipfile.ZipFile(io.BytesIO(raw.data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError) as exc:
        raise SourceError(f"corrupt DOCX file: {exc}") from None
    # A DOCX is a zip: refuse a zip bomb by its declared sizes (zipfile never inflates past them) before
    # python-docx inflates and parses it all in memory (a 500 KB bomb cost 1 GB and 5 s before this check).
    if expanded > MAX_DOCX_EXPANDED_BYTES:
        raise SourceError(
            f"DOCX expands to {expanded / 1e6:.0f} MB (from {len(raw.data) / 1e6:.2g} MB), over the "
            f"{MAX_DOCX_EXPANDED_BYTES / 1e6:.0f} MB limit: refused as a possible zip bomb"
        )
    try:
        document = docx.Document(io.BytesIO(raw.data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise SourceError(f"corrupt DOCX file: {exc}") from None
    blocks: list[Block] = []
    title = ""
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = item.text.strip()
            style = item.style.name if item.style is not None else ""
            if not text:
                continue
            if style == "Title":
                title = title or text
                blocks.append(Block("heading", text, 1))
            elif style.startswith("Heading") and style[7:].strip().isdigit():
                blocks.append(Block("heading", text, int(style[7:].strip())))
            else:
                blocks.append(Block("text", text))
        elif isinstance(item, Table):
            rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in item.rows]
            blocks.append(Block("text", "\n".join(r for r in rows if r.strip(" |"))))
    if not any(b.kind == "text" for b in blocks):
        raise SourceError("DOCX has no text")
    return Parsed(title or _first_heading(blocks) or _stem_title(raw), blocks)


# -- plain text and code ------------------------------------------------------------------------------


def parse_text(raw: RawDocument) -> Parsed:
    text = decode_text(raw.data)
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]
    blocks = [Block("text", p) for p in paragraphs]
    return Parsed(_stem_title(raw), blocks)


def parse_code(raw: RawDocument) -> Parsed:
    text = decode_text(raw.data)
    name = PurePosixPath(raw.uri).name
    return Parsed(name, [Block("heading", name, 1), Block("code", text.rstrip("\n"))])
