"""Files shared in a Slack thread, read for that thread's answers only: downloaded with the bot token from Slack's
file host alone, parsed by the ingest parsers, offered to the agent as extra sources cited by file name (and page,
for a PDF), and never stored (each answer reads the thread's files again, so a deleted file or message, or one past
the retention period, is simply no longer there). What cannot be read gets one line naming the file."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx
import numpy as np
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from lore.config import Settings
from lore.llm import supports_vision
from lore.logs import kv
from lore.types import Hit, ImagePart

log = logging.getLogger(__name__)

SLACK_FILE_HOST = "files.slack.com"
PASSAGE_CHARS = 1200
PASSAGES_PER_ANSWER = 6
# The image formats OpenAI-compatible vision models take, by the bytes they begin with: a file is sent as the type
# its bytes show, and one that is no such image is refused here rather than failing the whole answer at the model.
VISION_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
_IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF87a": "image/gif"}
_IMAGE_MAGIC |= {b"GIF89a": "image/gif"}
_ARCHIVES = {"zip", "gzip", "gz", "tar", "tgz", "7z", "rar", "bz2", "xz"}
_CODE = {"python", "javascript", "typescript", "go", "java", "ruby", "shell", "c", "cpp", "rust", "sql", "yaml", "json"}
_CODE |= {"py", "js", "ts", "sh", "rb", "rs", "yml", "toml", "kotlin", "swift", "php", "csharp", "scala"}


class Passage(NamedTuple):
    """A piece of a thread's file, as a source: a PDF's passages are per page, each page a source of its own."""

    uri: str  # slack-file:F0123, or slack-file:F0123#page=3 (a PDF viewer's own way to name a page)
    label: str  # what its citation shows: the file name, and for a PDF the page ("report.pdf, p. 3")
    text: str


@dataclass
class ThreadFiles:
    """What the thread's files give an answer: passages (extra sources) and one line per file that could not."""

    passages: list[Passage]
    notes: list[str]
    # Images for a model that can see them (LORE_VISION); otherwise each image gets a note instead.
    images: list[ImagePart] = field(default_factory=list)


def allowed_url(settings: Settings, url: str) -> bool:
    """Only Slack's file host (https) or the Web API's own host (SLACK_API_URL, the fake in tests) gets the token."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname == SLACK_FILE_HOST and parts.port in (None, 443):
        return True
    api = urlsplit(settings.slack_api_url) if settings.slack_api_url else None
    return api is not None and (parts.scheme, parts.netloc) == (api.scheme, api.netloc)


def _parser(file: dict[str, Any]) -> Callable[..., Any] | None:
    from ingest import parsers

    kind = str(file.get("filetype") or PurePosixPath(str(file.get("name") or "")).suffix.lstrip(".")).lower()
    by_kind: dict[str, Callable[..., Any]] = {
        "pdf": parsers.parse_pdf,
        "docx": parsers.parse_docx,
        "markdown": parsers.parse_markdown,
        "md": parsers.parse_markdown,
        "html": parsers.parse_html,
        "htm": parsers.parse_html,
        "text": parsers.parse_text,
        "txt": parsers.parse_text,
        "csv": parsers.parse_text,
        "rst": parsers.parse_rst,
    }
    if kind in by_kind:
        return by_kind[kind]
    return parsers.parse_code if kind in _CODE else None


def _unreadable_kind(file: dict[str, Any], *, vision: bool) -> str | None:
    mimetype = str(file.get("mimetype") or "")
    kind = str(file.get("filetype") or "").lower()
    if mimetype.startswith("image/") and not vision:
        return "it is an image, and Lore cannot read images"
    if mimetype.startswith("image/") and mimetype not in VISION_TYPES:
        return "Lore reads PNG, JPEG, GIF and WebP images only"
    if mimetype.startswith(("audio/", "video/")):
        return "it is audio or video, and Lore cannot listen to recordings"
    if kind in _ARCHIVES or mimetype in ("application/zip", "application/x-zip-compressed"):
        return "it is an archive; share the files inside it instead"
    return None


def thread_file_entries(
    client: WebClient, *, channel_id: str, thread_ts: str, files: Sequence[dict[str, Any]], in_thread: bool
) -> list[tuple[float, dict[str, Any]]]:
    """(shared at, file) for the question's own files and, in a thread, the files of its earlier messages."""
    now = time.time()
    entries = [(now, dict(f)) for f in files]
    if in_thread:
        try:
            page = client.conversations_replies(channel=channel_id, ts=thread_ts, limit=200)
            for message in page.get("messages") or []:
                for f in message.get("files") or []:
                    entries.append((float(message.get("ts") or 0), dict(f)))
        except SlackApiError as exc:
            log.warning(kv("thread_files_unreadable", channel=channel_id, error=exc.response.get("error")))
    seen: set[str] = set()
    unique = []
    for shared, f in entries:
        key = str(f.get("id") or f.get("url_private_download") or f.get("name"))
        if key not in seen and f.get("mode") != "tombstone":  # a deleted file leaves a tombstone
            seen.add(key)
            unique.append((shared, f))
    return unique


def read_thread_files(settings: Settings, token: str, entries: list[tuple[float, dict[str, Any]]]) -> ThreadFiles:
    result = ThreadFiles(passages=[], notes=[])
    oldest = time.time() - settings.slack_file_retention_hours * 3600
    budget = int(settings.slack_thread_files_max_mb * 1024 * 1024)
    per_file = int(settings.slack_file_max_mb * 1024 * 1024)
    vision = supports_vision(settings)
    used = 0
    with httpx.Client(timeout=30.0, follow_redirects=False) as http:
        for shared, f in entries:
            name = str(f.get("name") or f.get("title") or f.get("id") or "a file")
            if shared < oldest:
                continue  # past the retention period: forgotten
            if used >= settings.slack_thread_files_max:
                result.notes.append(f"{name}: not read, this thread already has {used} files (the limit).")
                continue
            used += 1
            why = _unreadable_kind(f, vision=vision)
            image = str(f.get("mimetype") or "") in VISION_TYPES
            parse = _parser(f)
            if why is None and parse is None and not image:
                why = "Lore cannot read this kind of file"
            limit = min(per_file, budget, int(settings.vision_max_mb * 1024 * 1024) if image else budget)
            if why is None and int(f.get("size") or 0) > limit:
                why = f"it is larger than the {limit / 1048576:.0f} MB limit"
            if why is not None:
                result.notes.append(f"{name}: not read, {why}.")
                continue
            if image:
                data, error = _download(settings, http, token, f, limit)
                media_type = image_type(data) if error is None else None
                if media_type is None:
                    result.notes.append(f"{name}: not read, {error or 'it is not a PNG, JPEG, GIF or WebP image'}.")
                    continue
                budget -= len(data)
                result.images.append(ImagePart(name=name, media_type=media_type, data=data))
                continue
            assert parse is not None
            pages, error = _download_and_parse(settings, http, token, f, name, parse, limit)
            if error is not None:
                result.notes.append(f"{name}: not read, {error}.")
                continue
            budget -= sum(len(text.encode()) for _, text in pages)
            uri = f"slack-file:{f.get('id') or name}"
            for page, text in pages:
                source = (f"{uri}#page={page}", f"{name}, p. {page}") if page else (uri, name)
                result.passages += [Passage(*source, piece) for piece in _passages(text)]
    return result


def _download_and_parse(
    settings: Settings,
    http: httpx.Client,
    token: str,
    f: dict[str, Any],
    name: str,
    parse: Callable[..., Any],
    limit: int,
) -> tuple[list[tuple[int, str]], str | None]:
    """The file's text as (page, text) sections (page 0: a format without pages), or why it cannot be read."""
    from ingest.document import RawDocument

    data, error = _download(settings, http, token, f, limit)
    if error is not None:
        return [], error
    try:
        parsed = parse(RawDocument(uri=name, source=name, source_kind="slack", data=data, parse=parse))
    except Exception as exc:  # the parsers' SourceError, and whatever a corrupt file makes a library raise
        log.info(kv("thread_file_unparsable", file=f.get("id"), error=f"{type(exc).__name__}: {exc}"))
        return [], "it is corrupt, password-protected or empty"
    pages: dict[int, list[str]] = {}
    for block in parsed.blocks:
        if block.text.strip():
            pages.setdefault(block.page, []).append(block.text)
    sections = [(page, "\n\n".join(texts)) for page, texts in pages.items()]
    return (sections, None) if sections else ([], "it has no readable text")


def image_type(data: bytes) -> str | None:
    """The vision media type the bytes are, if any."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _IMAGE_MAGIC.items() if data.startswith(magic)), None)


def _download(
    settings: Settings, http: httpx.Client, token: str, f: dict[str, Any], limit: int
) -> tuple[bytes, str | None]:
    """The file's bytes, fetched with the bot token from Slack's file host only, or why not."""
    url = str(f.get("url_private_download") or f.get("url_private") or "")
    if not allowed_url(settings, url):
        log.warning(kv("thread_file_refused", file=f.get("id"), host=urlsplit(url).hostname))
        return b"", "it is not on Slack's file host, so the bot token was not sent there"
    try:
        with http.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
            if response.status_code != 200:
                return b"", f"the download failed (HTTP {response.status_code})"
            data = bytearray()
            for piece in response.iter_bytes():
                data += piece
                if len(data) > limit:
                    return b"", f"it is larger than the {limit / 1048576:.0f} MB limit"
    except httpx.HTTPError as exc:
        return b"", f"the download failed ({type(exc).__name__})"
    return bytes(data), None


def _passages(text: str) -> list[str]:
    from bot.render import split_text

    return split_text(text, PASSAGE_CHARS)


def best_passages(settings: Settings, question: str, files: ThreadFiles) -> list[Any]:
    """The thread files' passages closest to the question, as the agent's ScoredHits (negative chunk ids: they
    are not chunks of the knowledge base)."""
    from lore.embeddings import get_embedder
    from lore.search import ScoredHit

    if not files.passages:
        return []
    embedder = get_embedder(settings)
    vectors = embedder.embed([question] + [passage.text for passage in files.passages])
    scores = vectors[1:] @ vectors[0]
    order = np.argsort(-scores)[:PASSAGES_PER_ANSWER]
    hits = []
    for rank, i in enumerate(order):
        uri, label, text = files.passages[int(i)]
        hit = Hit(chunk_id=-(rank + 1), document_id=-1, uri=uri, title=label, heading=label, text=text, score=1.0)
        hits.append(ScoredHit(hit=hit, similarity=float(scores[int(i)]), fulltext=False, feedback=0.0))
    return hits
