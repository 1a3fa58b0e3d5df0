"""Web ingest against a real local HTTP server: crawl depth and page limit, robots.txt, politeness, sitemap,
and failing URLs (404, 500, redirect loop, slow response) each giving one error."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.web_site import Response, WebSite
from ingest.pipeline import ingest_sources
from lore.config import Settings
from tests.ingest.helpers import rows

PAGES = {
    "/": "<h1>Home</h1><p>Welcome to the docs portal of the storage team.</p>"
    '<a href="/a">A</a> <a href="/b#top">B</a> <a href="/private/x">secret</a> <a href="http://example.invalid/">out</a>',
    "/a": '<h1>Alpha</h1><p>Alpha volumes are replicated three times.</p><nav><a href="/c">C</a></nav>',
    "/b": "<h1>Beta</h1><p>Beta snapshots run at 04:00 UTC.</p>",
    "/c": "<h1>Gamma</h1><p>Gamma is two links away from home.</p>",
    "/private/x": "<h1>Private</h1><p>robots.txt forbids this page.</p>",
}


def respond(site: WebSite, path: str) -> Response:
    if path == "/robots.txt":
        return Response(200, "User-agent: *\nDisallow: /private/\n", "text/plain")
    if path == "/sitemap.xml":
        base = f"http://127.0.0.1:{site.port}"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<url><loc>{base}/a</loc></url><url><loc>{base}/b</loc></url></urlset>"
        )
        return Response(200, body, "application/xml")
    if path in PAGES:
        return Response(200, f"<html><head><title>{path}</title></head><body><main>{PAGES[path]}</main></body></html>")
    if path == "/500":
        return Response(500, "boom", "text/plain")
    if path in ("/loop", "/loop2"):
        return Response(302, headers={"Location": "/loop2" if path == "/loop" else "/loop"})
    if path == "/slow":
        time.sleep(2)
        return Response(200, "<main><p>too late</p></main>", "text/html")
    return Response(404, "not found", "text/plain")


@pytest.fixture
def site() -> Iterator[WebSite]:
    with WebSite(respond) as served:
        yield served


def _polite(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(update={"crawl_delay_s": 0.05, "http_timeout_s": 0.5, **update})


def _uris(settings: Settings) -> list[str]:
    return sorted(u for (u,) in rows(settings, "SELECT uri FROM documents"))


def test_crawl_follows_same_host_links_to_the_depth_and_obeys_robots(db: Settings, site: WebSite) -> None:
    report = ingest_sources(_polite(db), [site.url("/")], crawl_depth=1)
    assert report.errors == []
    assert _uris(db) == [site.url("/"), site.url("/a"), site.url("/b")]  # /c is two links away
    assert "/private/x" not in site.paths()
    assert site.paths().count("/robots.txt") == 1
    heading, text = rows(db, "SELECT heading, text FROM chunks WHERE text LIKE '%%replicated%%'")[0]
    assert (heading, text) == ("Alpha", "Alpha volumes are replicated three times.")


def test_page_limit_and_polite_spacing(db: Settings, site: WebSite) -> None:
    report = ingest_sources(_polite(db, crawl_max_pages=2, crawl_delay_s=0.3), [site.url("/")], crawl_depth=3)
    assert report.documents_added == 2
    times = [t for t, _ in site.requests]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 2 and min(gaps) >= 0.28, gaps


def test_sitemap_lists_the_pages(db: Settings, site: WebSite) -> None:
    report = ingest_sources(_polite(db), [site.url("/sitemap.xml")])
    assert report.documents_added == 2
    assert _uris(db) == [site.url("/a"), site.url("/b")]


def test_a_disallowed_url_named_by_the_user_is_an_error(db: Settings, site: WebSite) -> None:
    report = ingest_sources(_polite(db), [site.url("/private/x")])
    assert [e.as_json() for e in report.errors] == [
        {"source": site.url("/private/x"), "error": "disallowed by robots.txt"}
    ]


def test_failing_urls_each_give_one_error_and_the_rest_goes_in(db: Settings, site: WebSite) -> None:
    bad = {
        site.url("/missing"): "HTTP 404 Not Found",
        site.url("/500"): "HTTP 500 Internal Server Error",
        site.url("/loop"): "redirect loop (more than 5 redirects)",
        site.url("/slow"): "timed out after 0.5 s",
    }
    started = time.monotonic()
    report = ingest_sources(_polite(db), [*bad, site.url("/b")])
    assert time.monotonic() - started < 10
    assert {e.source: e.error for e in report.errors} == bad
    assert len(report.errors) == 4
    assert _uris(db) == [site.url("/b")]
