"""Web ingest against a real local HTTP server: crawl depth and page limit, robots.txt, politeness, sitemap,
and failing URLs (404, 500, redirect loop, slow response) each giving one error."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

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


class Site:
    def __init__(self) -> None:
        self.requests: list[tuple[float, str]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append((time.monotonic(), self.path))
                path = self.path
                if path == "/robots.txt":
                    self._send(200, "User-agent: *\nDisallow: /private/\n", "text/plain")
                elif path == "/sitemap.xml":
                    base = f"http://127.0.0.1:{site.port}"
                    body = (
                        '<?xml version="1.0" encoding="UTF-8"?>'
                        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                        f"<url><loc>{base}/a</loc></url><url><loc>{base}/b</loc></url></urlset>"
                    )
                    self._send(200, body, "application/xml")
                elif path in PAGES:
                    html = f"<html><head><title>{path}</title></head><body><main>{PAGES[path]}</main></body></html>"
                    self._send(200, html, "text/html; charset=utf-8")
                elif path == "/500":
                    self._send(500, "boom", "text/plain")
                elif path in ("/loop", "/loop2"):
                    self.send_response(302)
                    self.send_header("Location", "/loop2" if path == "/loop" else "/loop")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif path == "/slow":
                    time.sleep(2)
                    self._send(200, "<main><p>too late</p></main>", "text/html")
                else:
                    self._send(404, "not found", "text/plain")

            def _send(self, status: int, body: str, kind: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # the slow handler is still sleeping when the test ends
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        return [p for _, p in self.requests]


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site()
    yield served
    served.server.shutdown()
    served.server.server_close()


def _polite(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(update={"crawl_delay_s": 0.05, "http_timeout_s": 0.5, **update})


def _uris(settings: Settings) -> list[str]:
    return sorted(u for (u,) in rows(settings, "SELECT uri FROM documents"))


def test_crawl_follows_same_host_links_to_the_depth_and_obeys_robots(db: Settings, site: Site) -> None:
    report = ingest_sources(_polite(db), [site.url("/")], crawl_depth=1)
    assert report.errors == []
    assert _uris(db) == [site.url("/"), site.url("/a"), site.url("/b")]  # /c is two links away
    assert "/private/x" not in site.paths()
    assert site.paths().count("/robots.txt") == 1
    heading, text = rows(db, "SELECT heading, text FROM chunks WHERE text LIKE '%%replicated%%'")[0]
    assert (heading, text) == ("Alpha", "Alpha volumes are replicated three times.")


def test_page_limit_and_polite_spacing(db: Settings, site: Site) -> None:
    report = ingest_sources(_polite(db, crawl_max_pages=2, crawl_delay_s=0.3), [site.url("/")], crawl_depth=3)
    assert report.documents_added == 2
    times = [t for t, _ in site.requests]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 2 and min(gaps) >= 0.28, gaps


def test_sitemap_lists_the_pages(db: Settings, site: Site) -> None:
    report = ingest_sources(_polite(db), [site.url("/sitemap.xml")])
    assert report.documents_added == 2
    assert _uris(db) == [site.url("/a"), site.url("/b")]


def test_a_disallowed_url_named_by_the_user_is_an_error(db: Settings, site: Site) -> None:
    report = ingest_sources(_polite(db), [site.url("/private/x")])
    assert [e.as_json() for e in report.errors] == [
        {"source": site.url("/private/x"), "error": "disallowed by robots.txt"}
    ]


def test_failing_urls_each_give_one_error_and_the_rest_goes_in(db: Settings, site: Site) -> None:
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
