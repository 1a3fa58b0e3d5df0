"""The ingest issue's bad inputs, plus a zip bomb and a 10,000-file directory, as ONE ingest: every bad source
is one clear error naming it, every good file goes in, nothing else is lost.

Each bad input alone (with its exact message) is tested in tests/ingest/test_bad_input.py and
tests/ingest/test_web.py; an unreadable file needs the root-only seteuid trick of
tests/ingest/test_bad_input.py::test_unreadable_file and is not repeated here.
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import docx

from harness.web_site import WebSite
from ingest.pipeline import ingest_sources
from lore.config import Settings
from lore.db import raw_connection
from tests.ingest.helpers import make_pdf

SMALL_FILES = 10_000


def _zip_bomb(declared_mb: int) -> bytes:
    """A DOCX whose document.xml inflates to `declared_mb` MB (about 1,000:1)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"<w:p><w:r><w:t>a</w:t></w:r></w:p>" * 30_000
            for _ in range(declared_mb * (1 << 20) // len(block)):
                member.write(block)
    return buf.getvalue()


def _good_docx(path: Path) -> None:
    document = docx.Document()
    document.add_heading("Escalation", level=1)
    document.add_paragraph("Escalate a SEV1 to the incident commander on duty within 15 minutes.")
    document.save(str(path))


def test_one_ingest_of_every_bad_input_and_ten_thousand_small_files(
    db: Settings, tmp_path: Path, site: WebSite
) -> None:
    root = tmp_path / "corpus"
    (root / "many").mkdir(parents=True)
    good = {
        root / "runbook.md": "# Runbook\n\nThe cache warmer runs every 7 minutes on host warm-03.\n",
        root / "notes.txt": "Backups are kept 35 days.\n\nRestores are tested monthly.\n",
        root / "page.html": "<html><body><main><h1>Status</h1><p>The status page is status.example.com.</p></main>"
        "</body></html>",
    }
    for path, text in good.items():
        path.write_text(text)
    (root / "report.pdf").write_bytes(make_pdf(["Quarterly uptime was 99.95 percent."]))
    _good_docx(root / "escalation.docx")
    for n in range(SMALL_FILES):  # tiny and mostly identical: one title, ten texts, so ten embeddings in all
        text = f"# Build cache\n\nBuild cache shard {n % 10} lives on host cache-{n % 10:02d}.\n"
        (root / "many" / f"n{n:05d}.md").write_text(text)
    bad = {
        root / "empty.md": (b"", "empty file"),
        root / "photo.txt": (bytes(range(256)) * 64, "binary file"),
        root / "latin1.md": ("# Café\n\nprix: 5 €\n".encode("cp1252"), "not valid UTF-8"),
        root / "truncated.pdf": (make_pdf(["Quarterly numbers"])[:300], "corrupt or truncated PDF"),
        root / "secret.pdf": (make_pdf(["Salaries"], password="hunter2"), "password-protected PDF"),
        root / "huge.md": (b"word " * 700_000, "over the 3 MB limit"),
        root / "oneline.txt": (b"x" * 2_500_000, "a single line of"),
        root / "deep.html": (b"<html><body>" + b"<div>" * 1000 + b"x" + b"</div>" * 1000 + b"</body></html>",
                             "nested more than"),
        root / "bomb.docx": (_zip_bomb(400), "zip bomb"),
        root / "notazip.docx": (os.urandom(4096), "corrupt DOCX"),
    }  # fmt: skip
    for path, (data, _) in bad.items():
        path.write_bytes(data)
    (root / "self.md").symlink_to(root / "self.md")
    (root / "many" / "back").symlink_to(root, target_is_directory=True)
    os.mkfifo(root / "pipe.md")
    expected_errors = {str(path): why for path, (_, why) in bad.items()}
    expected_errors[str(root / "self.md")] = "symlink loop"
    expected_errors[str(root / "many" / "back")] = "symlink loop"
    expected_errors[str(root / "pipe.md")] = "not a regular file"
    bad_urls = {
        site.url("/missing"): "404",
        site.url("/500"): "500",
        site.url("/loop"): "redirect loop",
        site.url("/slow"): "timed out",
    }
    expected_errors.update(bad_urls)
    settings = db.model_copy(update={"max_file_mb": 3, "crawl_delay_s": 0.0, "http_timeout_s": 0.5})

    started = time.monotonic()
    report = ingest_sources(settings, [str(root), *bad_urls, site.url("/b"), str(root / "nothing-here.md")])
    elapsed = time.monotonic() - started
    expected_errors[str(root / "nothing-here.md")] = "no such file or directory"

    errors = [e.as_json() for e in report.errors]
    by_source = {e["source"]: e["error"] for e in errors}
    assert len(errors) == len(by_source), "one error per bad source"
    assert set(by_source) == set(expected_errors), set(by_source) ^ set(expected_errors)
    for source, why in expected_errors.items():
        assert why in by_source[source], (source, by_source[source])
    good_count = len(good) + 2 + SMALL_FILES + 1  # + the PDF and DOCX, the small files, the good web page
    assert report.documents_added == good_count, report.as_json()
    with raw_connection(settings) as conn:
        documents, empty = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.id))"
            " FROM documents d"
        ).fetchone()
        facts = conn.execute(
            "SELECT count(*) FROM chunks WHERE text LIKE ANY (%s)",
            (["%warm-03%", "%35 days%", "%status.example.com%", "%99.95%", "%15 minutes%"],),
        ).fetchone()[0]
    assert documents == good_count and empty == 0
    assert facts == 5
    print(f"\n{len(expected_errors)} bad sources, {good_count} good documents in {elapsed:.1f} s")
