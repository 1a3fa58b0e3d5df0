"""Files and directories: walk a tree (skipping build assets), refuse what cannot be read, hand bytes on.

A directory is a *sync root*: every document found under it records the root, so a later ingest of the same
directory can delete the documents of files that vanished. Symlinked directories are followed once; a link
back into a directory already being walked is reported as a symlink loop instead of walking forever.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ingest import parsers
from ingest.document import Loaded, LoadError, Parsed, RawDocument, SourceError
from lore.logs import kv

log = logging.getLogger(__name__)

CODE_SUFFIXES = {
    ".py", ".js", ".ts", ".tsx", ".jsx", ".go", ".rs", ".java", ".kt", ".c", ".h", ".cc", ".cpp", ".hpp", ".rb",
    ".php", ".cs", ".swift", ".scala", ".sh", ".bash", ".sql", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".json",
    ".proto", ".tf", ".lua", ".r", ".m", ".ex", ".exs", ".erl", ".hs", ".clj", ".dart", ".vue", ".svelte",
}  # fmt: skip
PARSERS: dict[str, Callable[[RawDocument], Parsed]] = {
    ".md": parsers.parse_markdown,
    ".markdown": parsers.parse_markdown,
    ".rst": parsers.parse_rst,
    ".txt": parsers.parse_text,
    ".text": parsers.parse_text,
    ".html": parsers.parse_html,
    ".htm": parsers.parse_html,
    ".pdf": parsers.parse_pdf,
    ".docx": parsers.parse_docx,
    **{suffix: parsers.parse_code for suffix in CODE_SUFFIXES},
}
# Build output and tooling, not documentation (Sphinx's _static/_sources, node_modules, virtualenvs...).
SKIP_DIRS = {"node_modules", "__pycache__", "venv", ".venv", "site-packages", "dist", "build"}
UNREADABLE_DIR = "cannot read directory"
SKIP_NAMES = {"searchindex.js", "package-lock.json", "yarn.lock", "poetry.lock", "Cargo.lock"}


@dataclass
class FileSource:
    """A path named by the user: its documents (or errors), and the sync root when it is a directory."""

    root: str | None
    items: Iterator[Loaded]
    skipped: list[str] = field(default_factory=list)


def file_uri(path: str) -> str:
    return Path(os.path.abspath(path)).as_uri()


def open_path(path: str, *, max_bytes: int, parser: Callable[[RawDocument], Parsed] | None = None) -> Loaded:
    """Read one file (size-checked, regular files only) into a RawDocument, or say why not."""
    uri = file_uri(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        reason = "symlink loop" if exc.errno == errno.ELOOP else (exc.strerror or type(exc).__name__)
        return LoadError(path, f"cannot read: {reason}", uri)
    if not stat.S_ISREG(info.st_mode):
        return LoadError(path, "not a regular file (a FIFO, socket or device): skipped", uri)
    if info.st_size > max_bytes:
        return LoadError(
            path,
            f"file is {info.st_size / 1e6:.3g} MB, over the {max_bytes / 1e6:.3g} MB limit (LORE_MAX_FILE_MB)",
            uri,
        )
    try:
        # Non-blocking so a path swapped for a FIFO after the stat cannot hang the ingest.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except PermissionError:
        return LoadError(path, "cannot read: permission denied", uri)
    except OSError as exc:
        return LoadError(path, f"cannot read: {exc.strerror or exc}", uri)
    if parser is None:
        parser = _sniff_parser(data)
        if parser is None:
            return LoadError(path, "binary file of an unsupported type: skipped", uri)
    return RawDocument(uri=uri, source=path, source_kind="file", data=data, parse=parser)


def _sniff_parser(data: bytes) -> Callable[[RawDocument], Parsed] | None:
    """A file named without a known suffix: plain text when it looks like text, else nothing."""
    head = data[:8192]
    if head.startswith(b"%PDF-"):
        return parsers.parse_pdf
    if b"\x00" in head:
        return None
    return parsers.parse_text


def load_path(path: str, *, max_bytes: int) -> FileSource:
    """What a path named on the command line yields: one file, or a directory walk."""
    if os.path.isdir(path):
        root = os.path.abspath(path)
        source = FileSource(root=root, items=iter(()))
        source.items = _walk(path, root, max_bytes=max_bytes, skipped=source.skipped)
        return source
    parser = PARSERS.get(Path(path).suffix.lower())
    return FileSource(root=None, items=iter([open_path(path, max_bytes=max_bytes, parser=parser)]))


def _walk(path: str, root: str, *, max_bytes: int, skipped: list[str]) -> Iterator[Loaded]:
    for entry in list_tree(path, skipped=skipped):
        if isinstance(entry, LoadError):
            yield entry
            continue
        item = open_path(entry, max_bytes=max_bytes, parser=PARSERS[Path(entry).suffix.lower()])
        if isinstance(item, RawDocument):
            item.source_root = root
        yield item
    if skipped:
        log.info(kv("ingest.skipped", root=root, files=len(skipped), reason="unsupported type or build asset"))


def list_tree(path: str, *, skipped: list[str]) -> Iterator[str | LoadError]:
    """The ingestible files under a directory (sorted), and an error for each loop or unreadable directory."""
    visited = {os.path.realpath(path)}
    errors: list[LoadError] = []

    def on_error(exc: OSError) -> None:
        name = exc.filename or path
        errors.append(LoadError(str(name), f"{UNREADABLE_DIR}: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(path, followlinks=True, onerror=on_error):
        yield from errors
        errors.clear()
        kept = []
        for name in sorted(dirnames):
            full = os.path.join(dirpath, name)
            if name.startswith((".", "_")) or name in SKIP_DIRS:
                continue
            real = os.path.realpath(full)
            if real in visited:
                yield LoadError(full, f"symlink loop: {full} leads back to {real}, already walked")
                continue
            visited.add(real)
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            suffix = Path(name).suffix.lower()
            if suffix not in PARSERS or name.startswith(".") or name in SKIP_NAMES or name.endswith(".min.js"):
                skipped.append(full)
                continue
            yield full
    yield from errors


def open_in_root(path: str, root: str | None, *, max_bytes: int) -> Loaded:
    """One file of a directory listed earlier (a queued batch): read it as part of its sync root."""
    item = open_path(path, max_bytes=max_bytes, parser=PARSERS.get(Path(path).suffix.lower()))
    if isinstance(item, RawDocument):
        item.source_root = root
    return item


def check_source_path(path: str) -> None:
    """Raise SourceError when a named path does not exist at all (a usage error for the CLI)."""
    if not os.path.lexists(path):
        raise SourceError(f"no such file or directory: {path}")
