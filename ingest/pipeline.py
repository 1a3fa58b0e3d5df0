"""The ingest pipeline: sources → raw documents → (unchanged? skip) → parse and chunk → embed → COPY.

Three kinds of work overlap, because embedding dominates and torch already uses both cores:
a producer thread walks/fetches sources and hashes the bytes (unchanged documents stop here, unparsed),
a small thread pool parses and chunks changed documents ahead of need, the calling thread embeds groups
of chunks (vectors of text already in the knowledge base or already embedded in this run are reused), and
a writer thread upserts documents and COPYs their chunks while the next group embeds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ingest import store
from ingest.chunking import CHUNKER_VERSION, ChunkText, chunk_document
from ingest.document import Loaded, LoadError, NotContent, RawDocument, SourceError
from ingest.loaders import files, slack, web
from lore.config import Settings
from lore.embedder_registry import ingest_guard
from lore.embeddings import check_dimensions, get_embedder
from lore.logs import kv
from lore.models import EMBEDDING_DIM, PUBLIC

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
# Documents whose stored hash is compared in one query; chunks embedded per group; parse-ahead window.
_HASH_GROUP = 64
_PARSE_AHEAD = 64
_VECTOR_CACHE_LIMIT = 200_000


@dataclass
class IngestReport:
    documents_added: int = 0
    documents_updated: int = 0
    documents_unchanged: int = 0
    documents_deleted: int = 0
    chunks_added: int = 0
    errors: list[LoadError] = field(default_factory=list)
    # Not part of the JSON contract: what the CLI and benchmarks show besides it.
    skipped: int = 0
    chunks_embedded: int = 0
    index_rebuild_seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "documents_added": self.documents_added,
            "documents_updated": self.documents_updated,
            "documents_unchanged": self.documents_unchanged,
            "documents_deleted": self.documents_deleted,
            "chunks_added": self.chunks_added,
            "errors": [e.as_json() for e in self.errors],
        }

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _NotContent:
    """A parsed source that turned out to be navigation (NotContent): skipped, and its old copy removed."""

    uri: str
    source: str
    reason: str


@dataclass
class Source:
    """One source the user named, expanded lazily into documents."""

    name: str
    items: Iterator[Loaded]
    root: str | None = None  # a directory: a sync root
    after: Callable[[], None] | None = None  # runs once everything from the source is written
    skipped: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    complete: bool = True  # False when part of the tree could not be listed: then nothing is deleted


def open_source(settings: Settings, name: str, *, crawl_depth: int | None = None) -> Source:
    """The right loader for a path, URL or slack://CHANNEL."""
    if slack.is_slack(name):
        channel = slack.channel_of(name)
        sync = slack.ChannelSync(channel, store.get_cursor(settings, slack.cursor_key(channel)))

        def save_cursor() -> None:
            if sync.newest:
                store.set_cursor(settings, slack.cursor_key(channel), sync.newest)

        return Source(name, slack.load_channel(settings, sync), after=save_cursor)
    if web.is_url(name):
        return Source(name, web.load_url(settings, name, depth=crawl_depth))
    try:
        files.check_source_path(name)
    except SourceError as exc:
        return Source(name, iter([LoadError(name, str(exc))]))
    found = files.load_path(name, max_bytes=int(settings.max_file_mb * 1_000_000))
    return Source(name, found.items, root=found.root, skipped=found.skipped)


def open_batch(settings: Settings, items: list[dict[str, Any]]) -> list[Source]:
    """A queued batch: files of a directory listed at queue time (embedded together), URLs, Slack channels."""
    max_bytes = int(settings.max_file_mb * 1_000_000)
    in_roots = [item for item in items if item.get("root") is not None]
    others = [item for item in items if item.get("root") is None]
    sources = [open_source(settings, str(i["source"]), crawl_depth=i.get("depth")) for i in others]
    if in_roots:
        loaded = (files.open_in_root(str(i["source"]), str(i["root"]), max_bytes=max_bytes) for i in in_roots)
        sources.insert(0, Source(f"batch of {len(in_roots)} files", loaded))
    return sources


def _yield_cpu_to_the_embedder() -> None:
    """Parser threads run at a lower priority (Linux: per thread), so torch keeps both cores busy and parsing
    fills the gaps; parsing needs only a few percent of the CPU that embedding the same text needs."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; PDFs and odd encodings sometimes carry it.
    return text.replace("\x00", "")


class Pipeline:
    """One ingest run over some sources; `run()` returns the report."""

    def __init__(
        self,
        settings: Settings,
        sources: list[Source],
        *,
        acl: list[str] | None = None,
        progress: Progress | None = None,
        allow_bulk: bool = True,
    ) -> None:
        self.settings = settings
        self.sources = sources
        self.acl = sorted(set(acl)) if acl else [PUBLIC]
        self.progress = progress
        self.allow_bulk = allow_bulk
        self.report = IngestReport()
        self.embedder = get_embedder(settings)
        self.total = 0
        self.done = 0
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=_PARSE_AHEAD)
        self._parsers = ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="ingest-parse", initializer=_yield_cpu_to_the_embedder
        )
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-write")
        self._vectors: dict[str, np.ndarray] = {}
        self._stop = threading.Event()

    # -- producer: sources → unchanged / parse futures / errors -------------------------------------------

    def _salt(self, raw: RawDocument, acl: list[str]) -> str:
        parts = [CHUNKER_VERSION, str(self.settings.chunk_words), self.embedder.name, ",".join(acl)]
        return "|".join([*parts, raw.source_root or "", raw.title_hint])

    def _produce(self) -> None:
        try:
            seen_uris: set[str] = set()
            for source in self.sources:
                group: list[RawDocument] = []
                for item in self._guarded(source):
                    if self._stop.is_set():
                        return
                    if item.uri is not None and isinstance(item, LoadError):
                        source.seen.append(item.uri)
                    if isinstance(item, LoadError):
                        if item.error.startswith(files.UNREADABLE_DIR):
                            source.complete = False
                        self._put("error", item)
                        continue
                    if item.uri in seen_uris:
                        continue
                    seen_uris.add(item.uri)
                    source.seen.append(item.uri)
                    group.append(item)
                    if len(group) >= _HASH_GROUP:
                        self._dispatch(group)
                        group = []
                self._dispatch(group)
                self._put("source_done", source)
        except Exception as exc:  # surfaced by the consumer: a loader bug must not hang the run
            self._put("fatal", exc)
        finally:
            self._put("end", None)

    @staticmethod
    def _guarded(source: Source) -> Iterator[Loaded]:
        """The source's items; a loader that breaks costs that source (one error), not the whole run."""
        try:
            yield from source.items
        except Exception as exc:
            log.exception(kv("ingest.loader_failed", source=source.name))
            source.complete = False
            yield LoadError(source.name, f"loader failed: {type(exc).__name__}: {exc}")

    def _put(self, kind: str, payload: Any) -> None:
        if kind in ("error", "parsed", "unchanged"):
            self.total += 1
        self._queue.put((kind, payload))

    def _dispatch(self, group: list[RawDocument]) -> None:
        if not group:
            return
        stored = store.existing_hashes(self.settings, [raw.uri for raw in group])
        for raw in group:
            acl = sorted(set(raw.acl)) if raw.acl else self.acl
            content_hash = raw.content_hash(self._salt(raw, acl))
            if stored.get(raw.uri) == content_hash:
                self._put("unchanged", raw.uri)
            else:
                self._put("parsed", self._parsers.submit(self._prepare, raw, acl, content_hash))

    def _prepare(
        self, raw: RawDocument, acl: list[str], content_hash: str
    ) -> store.PreparedDocument | LoadError | _NotContent:
        try:
            parsed = raw.parse(raw)
            chunks = [
                ChunkText(c.ord, _clean(c.heading), _clean(c.text))
                for c in chunk_document(parsed, chunk_words=self.settings.chunk_words)
            ]
        except NotContent as exc:
            return _NotContent(raw.uri, raw.source, str(exc))
        except SourceError as exc:
            return LoadError(raw.source, str(exc), raw.uri)
        except (RecursionError, MemoryError) as exc:
            return LoadError(raw.source, f"document too complex to parse ({type(exc).__name__})", raw.uri)
        except Exception as exc:  # a parsing library's bug must cost one document, not the run
            log.exception(kv("ingest.parse_failed", source=raw.source))
            return LoadError(raw.source, f"cannot parse: {type(exc).__name__}: {exc}", raw.uri)
        if not chunks:
            return LoadError(raw.source, "no text to index", raw.uri)
        meta = {k: v for k, v in raw.meta.items() if k != "messages"}
        return store.PreparedDocument(
            uri=raw.uri,
            title=_clean(parsed.title)[:500],
            source_kind=raw.source_kind,
            source_root=raw.source_root,
            content_hash=content_hash,
            acl=acl,
            meta=meta,
            chunks=chunks,
            source=raw.source,
        )

    # -- consumer: embed groups, hand them to the writer ----------------------------------------------

    def _embed(self, documents: list[store.PreparedDocument]) -> None:
        wanted: dict[str, str] = {}
        for document in documents:
            for chunk in document.chunks:
                if chunk.text_hash not in self._vectors:
                    wanted.setdefault(chunk.text_hash, chunk.embed_input)
        if wanted:
            self._vectors.update(store.stored_vectors(self.settings, list(wanted)))
            missing = [h for h in wanted if h not in self._vectors]
            if missing:
                vectors = self.embedder.embed([wanted[h] for h in missing])
                check_dimensions(vectors)
                self._vectors.update(zip(missing, vectors, strict=True))
                self.report.chunks_embedded += len(missing)
        for document in documents:
            rows = [self._vectors[c.text_hash] for c in document.chunks]
            document.vectors = np.stack(rows) if rows else np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        if len(self._vectors) > _VECTOR_CACHE_LIMIT:
            self._vectors.clear()

    def _write(self, documents: list[store.PreparedDocument], strategy: store.IndexStrategy) -> store.WriteResult:
        strategy.before_write()
        # Parallel writers: each server backend computes its rows' tsvector and index entries on its own core.
        result = store.write_documents(self.settings, documents, writers=self.settings.ingest_writers)
        self.report.errors.extend(LoadError(source, reason) for source, reason in result.rejected)
        strategy.after_write(result.chunks)
        return result

    def _account(self, result: store.WriteResult, count: int) -> None:
        self.report.documents_added += result.added
        self.report.documents_updated += result.updated
        self.report.chunks_added += result.chunks
        self._advance(count, "written")

    def _advance(self, count: int, label: str) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(label, self.done, max(self.total, self.done))

    def run(self) -> IngestReport:
        # No embedder switch lands during a run, and the run embeds with the model active once it may start.
        with ingest_guard(self.settings):
            return self._run()

    def _run(self) -> IngestReport:
        strategy = store.IndexStrategy(self.settings, allow_bulk=self.allow_bulk)
        producer = threading.Thread(target=self._produce, name="ingest-produce", daemon=True)
        writes: deque[tuple[Future[store.WriteResult], int]] = deque()
        pending: list[store.PreparedDocument] = []
        pending_chunks = 0
        not_content: list[str] = []  # uris of pages that are navigation, not content (NotContent)
        group_chunks = self.settings.embed_batch * 4

        def flush() -> None:
            nonlocal pending, pending_chunks
            if pending:
                self._embed(pending)
                writes.append((self._writer.submit(self._write, pending, strategy), len(pending)))
                pending, pending_chunks = [], 0
            while len(writes) > 1:
                done_write, count = writes.popleft()
                self._account(done_write.result(), count)

        def drain() -> None:
            flush()
            while writes:
                done_write, count = writes.popleft()
                self._account(done_write.result(), count)
            if not_content:  # skipped, and gone from the knowledge base if an earlier run indexed them
                log.info(
                    kv("ingest.skipped", files=len(not_content), reason="generated index, search or contents pages")
                )
                self.report.skipped += len(not_content)
                self.report.documents_deleted += store.delete_uris(self.settings, not_content)
                not_content.clear()

        producer.start()
        try:
            while True:
                kind, payload = self._queue.get()
                if kind == "parsed":
                    prepared = payload.result()
                    if isinstance(prepared, _NotContent):
                        not_content.append(prepared.uri)
                        log.debug(kv("ingest.not_content", source=prepared.source, reason=prepared.reason))
                        self._advance(1, prepared.source)
                        continue
                    if isinstance(prepared, LoadError):
                        self.report.errors.append(prepared)
                        self._advance(1, prepared.source)
                        continue
                    pending.append(prepared)
                    pending_chunks += len(prepared.chunks)
                    if pending_chunks >= group_chunks:
                        flush()
                elif kind == "unchanged":
                    self.report.documents_unchanged += 1
                    self._advance(1, payload)
                elif kind == "error":
                    self.report.errors.append(payload)
                    self._advance(1, payload.source)
                elif kind == "source_done":
                    drain()
                    self._finish_source(payload)
                elif kind == "fatal":
                    raise payload
                elif kind == "end":
                    drain()
                    break
        finally:
            self._stop.set()
            while producer.is_alive():  # unblock a producer waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    self._queue.get(timeout=0.1)
            self._parsers.shutdown(wait=True, cancel_futures=True)
            self._writer.shutdown(wait=True)
            strategy.finish()
            self.report.index_rebuild_seconds = strategy.rebuild_seconds
        return self.report

    def _finish_source(self, source: Source) -> None:
        self.report.skipped += len(source.skipped)
        if source.root is not None:
            if source.complete:
                self.report.documents_deleted += store.delete_vanished(self.settings, source.root, source.seen)
            else:
                log.warning(kv("ingest.sync_incomplete", root=source.root, reason="unreadable directories"))
        if source.after is not None:
            source.after()


def ingest_sources(
    settings: Settings,
    sources: list[str],
    *,
    acl: list[str] | None = None,
    progress: Progress | None = None,
    crawl_depth: int | None = None,
    allow_bulk: bool = True,
) -> IngestReport:
    """Ingest files, directories, URLs and slack://CHANNEL sources; one error entry per failed source."""
    opened = [open_source(settings, name, crawl_depth=crawl_depth) for name in sources]
    return Pipeline(settings, opened, acl=acl, progress=progress, allow_bulk=allow_bulk).run()


def ingest_loaded(
    settings: Settings, items: list[Loaded] | Iterator[Loaded], *, name: str, acl: list[str] | None = None
) -> IngestReport:
    """Ingest documents a caller already loaded (a Slack thread, a live message)."""
    source = Source(name, iter(items))
    return Pipeline(settings, [source], acl=acl, allow_bulk=False).run()
