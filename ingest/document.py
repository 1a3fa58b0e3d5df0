"""What loaders hand to the pipeline: raw documents to hash and parse, parsed blocks, and per-source errors."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

BlockKind = Literal["heading", "text", "code"]


class SourceError(Exception):
    """A source cannot be ingested; the message says why, and the pipeline names the source."""


class NotContent(SourceError):
    """The source is navigation, not content (a documentation site's generated index, search page or table of
    contents): it is skipped, not reported as an error, and a copy indexed earlier is removed."""


@dataclass(frozen=True)
class Block:
    """A structural piece of a parsed document: a heading (with its level), prose, or a code block."""

    kind: BlockKind
    text: str
    level: int = 0
    # The page it is on, from 1, in formats that have pages (PDF): what a citation of the passage names.
    page: int = 0


@dataclass
class Parsed:
    """A document after parsing: its title and its blocks in reading order."""

    title: str
    blocks: list[Block]
    # Where the page sits in its site (a documentation generator's breadcrumb, outermost first, without the
    # site's root and the page itself): put in front of every heading path, so passages say what part they are in.
    context: list[str] = field(default_factory=list)


@dataclass
class RawDocument:
    """A fetched document before parsing: the bytes are hashed first, so unchanged ones are never parsed."""

    uri: str
    source: str  # what the user named (a file, a directory entry, a URL): error entries name it
    source_kind: str  # file, web, slack
    data: bytes
    parse: Callable[[RawDocument], Parsed]
    source_root: str | None = None
    acl: list[str] | None = None
    title_hint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def content_hash(self, salt: str) -> str:
        """The document's identity for re-ingest: its bytes plus what shapes its chunks (the salt)."""
        digest = hashlib.sha256(self.data)
        digest.update(b"\x00" + salt.encode("utf-8"))
        return digest.hexdigest()


@dataclass(frozen=True)
class LoadError:
    """One source that failed: exactly one entry of the report's `errors` list."""

    source: str
    error: str
    # The document this error belongs to, when known: a directory sync keeps it instead of deleting it.
    uri: str | None = None

    def as_json(self) -> dict[str, str]:
        return {"source": self.source, "error": self.error}


Loaded = RawDocument | LoadError
