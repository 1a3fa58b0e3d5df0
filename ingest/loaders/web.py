"""Web pages: one URL, a site's sitemap.xml, or a same-host crawl with depth and page limits.

Polite by construction: robots.txt is honoured (its Crawl-delay too), requests to a host are spaced by
`settings.crawl_delay_s`, every request has a timeout, redirects are capped (a redirect loop is an error),
and responses larger than the file size limit are refused while streaming.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from ingest import parsers
from ingest.document import Loaded, LoadError, Parsed, RawDocument
from lore import __version__
from lore.config import Settings
from lore.logs import kv

log = logging.getLogger(__name__)

USER_AGENT = f"LoreBot/{__version__} (knowledge-base ingest)"
MAX_REDIRECTS = 5
_DISALLOW_ALL = ["User-agent: *", "Disallow: /"]


class FetchError(Exception):
    """A URL could not be fetched; the message is the report's error text."""


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class PoliteClient:
    """An HTTP client that asks robots.txt first and spaces its requests to each host."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.max_bytes = int(settings.max_file_mb * 1_000_000)
        self.client = httpx.Client(
            timeout=settings.http_timeout_s,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": USER_AGENT},
        )
        self._robots: dict[str, RobotFileParser] = {}
        self._last_request: dict[str, float] = {}

    def close(self) -> None:
        self.client.close()

    def _wait_turn(self, origin: str, robots: RobotFileParser | None) -> None:
        delay = self.settings.crawl_delay_s
        if robots is not None:
            delay = max(delay, float(robots.crawl_delay(USER_AGENT) or 0))
        last = self._last_request.get(origin)
        if last is not None:
            pause = last + delay - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        self._last_request[origin] = time.monotonic()

    def robots(self, url: str) -> RobotFileParser:
        origin = _origin(url)
        parser = self._robots.get(origin)
        if parser is None:
            parser = RobotFileParser(origin + "/robots.txt")
            self._wait_turn(origin, None)
            try:
                response = self.client.get(origin + "/robots.txt")
                # RFC 9309: a missing robots.txt allows everything; an unreachable one (5xx) allows nothing.
                if response.status_code >= 500:
                    parser.parse(_DISALLOW_ALL)
                elif response.status_code >= 400:
                    parser.parse([])
                else:
                    parser.parse(response.text.splitlines())
            except httpx.HTTPError:
                parser.parse(_DISALLOW_ALL)
            self._robots[origin] = parser
        return parser

    def fetch(self, url: str) -> httpx.Response:
        """GET with robots check, per-host delay, timeout, redirect cap and size limit; raises FetchError."""
        robots = self.robots(url)
        if not robots.can_fetch(USER_AGENT, url):
            raise FetchError("disallowed by robots.txt")
        self._wait_turn(_origin(url), robots)
        try:
            with self.client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise FetchError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
                body = bytearray()
                for part in response.iter_bytes():
                    body.extend(part)
                    if len(body) > self.max_bytes:
                        raise FetchError(f"response over the {self.max_bytes / 1e6:.3g} MB limit (LORE_MAX_FILE_MB)")
                response._content = bytes(body)
                return response
        except httpx.TooManyRedirects:
            raise FetchError(f"redirect loop (more than {MAX_REDIRECTS} redirects)") from None
        except httpx.TimeoutException:
            raise FetchError(f"timed out after {self.settings.http_timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"request failed: {type(exc).__name__}: {exc}") from None


def _parser_for(content_type: str, url: str) -> Callable[[RawDocument], Parsed] | None:
    kind = content_type.split(";", 1)[0].strip().lower()
    path = urlsplit(url).path.lower()
    if kind in ("text/html", "application/xhtml+xml"):
        return parsers.parse_html
    if kind == "application/pdf" or path.endswith(".pdf"):
        return parsers.parse_pdf
    if kind == "text/markdown" or path.endswith((".md", ".markdown")):
        return parsers.parse_markdown
    if kind == "text/x-rst" or path.endswith(".rst"):
        return parsers.parse_rst
    if kind == "text/plain":
        return parsers.parse_text
    return None


def _links(response: httpx.Response) -> list[str]:
    import lxml.html
    from lxml import etree

    try:
        doc = lxml.html.document_fromstring(response.content)
    except (etree.ParserError, ValueError):
        return []
    base = str(response.url)
    found = []
    for href in doc.xpath("//a/@href"):
        url, _fragment = urldefrag(urljoin(base, str(href).strip()))
        if is_url(url):
            found.append(url)
    return found


def _sitemap_urls(client: PoliteClient, url: str, limit: int) -> list[str]:
    from lxml import etree

    response = client.fetch(url)
    try:
        tree = etree.fromstring(response.content, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise FetchError(f"invalid sitemap XML: {exc}") from None
    locs = [str(loc).strip() for loc in tree.xpath("//*[local-name()='loc']/text()")]
    if etree.QName(tree).localname == "sitemapindex":
        pages: list[str] = []
        for child in locs:
            if len(pages) >= limit:
                break
            pages.extend(_sitemap_urls(client, child, limit - len(pages)))
        return pages[:limit]
    return locs[:limit]


def load_url(
    settings: Settings, url: str, *, depth: int | None = None, acl: list[str] | None = None
) -> Iterator[Loaded]:
    """Pages under `url`: the sitemap's pages, or a breadth-first same-host crawl to `depth` links away."""
    max_depth = settings.crawl_depth if depth is None else depth
    limit = settings.crawl_max_pages
    client = PoliteClient(settings)
    try:
        if urlsplit(url).path.endswith(".xml"):
            try:
                pages = _sitemap_urls(client, url, limit)
            except FetchError as exc:
                yield LoadError(url, str(exc))
                return
            queue = deque((page, max_depth) for page in pages)  # sitemap pages: no further crawl
        else:
            queue = deque([(urldefrag(url)[0], 0)])
        seen = {page for page, _ in queue}
        fetched = 0
        while queue and fetched < limit:
            page, level = queue.popleft()
            fetched += 1
            try:
                response = client.fetch(page)
            except FetchError as exc:
                yield LoadError(page, str(exc), page)
                continue
            parser = _parser_for(response.headers.get("content-type", ""), str(response.url))
            if parser is None:
                yield LoadError(page, f"unsupported content type {response.headers.get('content-type')!r}", page)
                continue
            yield RawDocument(uri=page, source=page, source_kind="web", data=response.content, parse=parser, acl=acl)
            if level < max_depth and parser is parsers.parse_html:
                host = urlsplit(page).netloc
                robots = client.robots(page)
                for link in _links(response):
                    # Links robots.txt disallows are not followed (only a URL named by the user is an error).
                    if urlsplit(link).netloc == host and link not in seen and robots.can_fetch(USER_AGENT, link):
                        seen.add(link)
                        queue.append((link, level + 1))
        if queue:
            log.info(kv("ingest.crawl_limit", url=url, pages=fetched, left=len(queue)))
    finally:
        client.close()
