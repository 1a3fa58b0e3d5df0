"""Bad input, each its own test: one clear error naming the source, and the good file next to it still goes in."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.loaders import files
from ingest.pipeline import Pipeline, Source, ingest_sources
from lore.config import Settings
from tests.ingest.helpers import chunk_texts, make_pdf

GOOD = "# Runbook\n\nThe cache warmer runs every 7 minutes on host warm-03.\n"


def _ingest_next_to_good(settings: Settings, tmp_path: Path, bad: Path) -> tuple[dict, list[str]]:
    (tmp_path / "good.md").write_text(GOOD)
    report = ingest_sources(settings, [str(tmp_path)])
    assert report.documents_added == 1, report.as_json()
    assert chunk_texts(settings, "%good.md") == ["The cache warmer runs every 7 minutes on host warm-03."]
    assert len(report.errors) == 1, report.as_json()
    error = report.errors[0].as_json()
    assert error["source"] == str(bad)
    return error, [e.source for e in report.errors]


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def build(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return build


CORRUPT_PDF = make_pdf(["Quarterly numbers"])[:300]


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (_write("empty.md", b""), "empty file"),
        (_write("photo.txt", bytes(range(256)) * 64), "binary file"),
        (_write("latin1.md", "# Café\n\nprix: 5 €\n".encode("cp1252")), "not valid UTF-8 text (byte 0xe9 at offset 5)"),
        (_write("report.pdf", CORRUPT_PDF), "corrupt or truncated PDF"),
        (_write("secret.pdf", make_pdf(["Salaries 2026"], password="hunter2")), "password-protected PDF"),
        (_write("deep.html", b"<html><body>" + b"<div>" * 1000 + b"x" + b"</div>" * 1000 + b"</body></html>"),
         "nested more than 250 levels"),
    ],
    ids=["empty", "binary-named-txt", "invalid-utf8", "corrupt-pdf", "password-pdf", "deeply-nested-html"],
)  # fmt: skip
def test_bad_file(db: Settings, tmp_path: Path, build: Callable[[Path], Path], expected: str) -> None:
    bad = build(tmp_path)
    error, _ = _ingest_next_to_good(db, tmp_path, bad)
    assert expected in error["error"]


def test_file_over_the_size_limit(db: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "huge.md"
    bad.write_text("word " * 2000)  # 10 kB against a 5 kB limit
    small_limit = db.model_copy(update={"max_file_mb": 0.005})
    (tmp_path / "good.md").write_text(GOOD)
    report = ingest_sources(small_limit, [str(tmp_path)])
    assert report.documents_added == 1
    assert [e.as_json() for e in report.errors] == [
        {"source": str(bad), "error": "file is 0.01 MB, over the 0.005 MB limit (LORE_MAX_FILE_MB)"}
    ]


def test_100_mb_single_line(db: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "dump.txt"
    with bad.open("wb") as handle:
        block = b"x" * (1 << 20)
        for _ in range(100):
            handle.write(block)
    try:
        # Default limit (50 MB): refused by size, without reading it.
        error, _ = _ingest_next_to_good(db, tmp_path, bad)
        assert error["error"] == "file is 105 MB, over the 50 MB limit (LORE_MAX_FILE_MB)"
        # A raised limit reads it, and refuses the single 100-million-character line.
        report = ingest_sources(db.model_copy(update={"max_file_mb": 200}), [str(bad)])
        assert [e.source for e in report.errors] == [str(bad)]
        assert "a single line of 104.9 million characters" in report.errors[0].error
    finally:
        bad.unlink()


def test_symlink_loops(db: Settings, tmp_path: Path) -> None:
    (tmp_path / "self.md").symlink_to(tmp_path / "self.md")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "notes.md").write_text("# Notes\n\nBackups are kept 35 days.\n")
    (sub / "back").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "good.md").write_text(GOOD)
    report = ingest_sources(db, [str(tmp_path)])
    assert report.documents_added == 2  # good.md and sub/notes.md, each once
    errors = {e.source: e.error for e in report.errors}
    assert set(errors) == {str(tmp_path / "self.md"), str(sub / "back")}
    assert errors[str(tmp_path / "self.md")] == "cannot read: symlink loop"
    assert errors[str(sub / "back")].startswith("symlink loop:")


def test_unreadable_file(db: Settings) -> None:
    # Tests run as root, and root ignores file permissions, so the loader reads the tree with the
    # *effective* uid of `nobody` (seteuid is reversible for root): the kernel then really refuses
    # the open with EACCES. The pipeline gets exactly what the loader produced.
    root = Path(tempfile.mkdtemp(prefix="lore-perm-"))
    try:
        root.chmod(0o755)
        (root / "good.md").write_text(GOOD)
        (root / "good.md").chmod(0o644)
        secret = root / "secret.md"
        secret.write_text("# Secret\n\nnothing to see\n")
        secret.chmod(0o000)
        found = files.load_path(str(root), max_bytes=10_000_000)
        assert os.geteuid() == 0, "this test simulates an unreadable file for root"
        os.seteuid(65534)
        try:
            items = list(found.items)
        finally:
            os.seteuid(0)
        source = Source(str(root), iter(items), root=found.root)
        report = Pipeline(db, [source]).run()
        assert report.documents_added == 1
        assert [e.as_json() for e in report.errors] == [
            {"source": str(secret), "error": "cannot read: permission denied"}
        ]
    finally:
        shutil.rmtree(root)


def test_fifo_is_not_read(db: Settings, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    error, _ = _ingest_next_to_good(db, tmp_path, fifo)
    assert "not a regular file" in error["error"]


def test_missing_path_is_one_error_and_the_rest_goes_in(db: Settings, tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text(GOOD)
    missing = str(tmp_path / "nope.md")
    report = ingest_sources(db, [missing, str(tmp_path / "good.md")])
    assert report.documents_added == 1
    assert [e.as_json() for e in report.errors] == [
        {"source": missing, "error": f"no such file or directory: {missing}"}
    ]
