"""Slack channel history and threads: paged, incremental from the last seen ts, patient with rate limits.

One document per conversation: a thread (parent and replies) or a standalone message, with the channel as
its ACL. The bot's own messages (any message with a `bot_id`, or from the bot user that `auth.test` names)
are never ingested, so Lore does not learn from its own answers. slack_sdk's RateLimitErrorRetryHandler
sleeps out HTTP 429 Retry-After (about a minute for non-Marketplace apps on conversations.history/replies).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from ingest.document import Block, Loaded, LoadError, Parsed, RawDocument
from lore.config import Settings

log = logging.getLogger(__name__)

SCHEME = "slack://"
# Messages that are not conversation: joins, leaves, topic changes, bot posts.
_SKIP_SUBTYPES = {
    "channel_join", "channel_leave", "channel_topic", "channel_purpose", "channel_name", "bot_message",
    "group_join", "group_leave", "pinned_item", "unpinned_item", "tombstone",
}  # fmt: skip
PAGE_LIMIT = 200


def is_slack(source: str) -> bool:
    return source.startswith(SCHEME)


def channel_of(source: str) -> str:
    return source[len(SCHEME) :].strip("/").split("/", 1)[0]


def cursor_key(channel_id: str) -> str:
    return f"{SCHEME}{channel_id}"


def make_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=int(settings.http_timeout_s))
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    return client


@dataclass(frozen=True)
class Workspace:
    bot_user_id: str
    url: str


_workspaces: dict[str, Workspace] = {}
_workspace_lock = threading.Lock()


def workspace(settings: Settings, client: WebClient) -> Workspace:
    """Who the bot is and where the workspace lives (auth.test), once per process and API URL."""
    with _workspace_lock:
        found = _workspaces.get(settings.slack_api_url)
        if found is None:
            info = client.auth_test()
            found = Workspace(str(info.get("user_id") or ""), str(info.get("url") or "https://slack.com/"))
            _workspaces[settings.slack_api_url] = found
        return found


def message_uri(space: Workspace, channel_id: str, ts: str) -> str:
    """The message's permalink form: Slack citations open it directly."""
    return f"{space.url.rstrip('/')}/archives/{channel_id}/p{ts.replace('.', '')}"


def is_own(message: dict[str, Any], space: Workspace) -> bool:
    return bool(message.get("bot_id")) or message.get("user") == space.bot_user_id


def _keep(message: dict[str, Any], space: Workspace) -> bool:
    return (
        not is_own(message, space)
        and message.get("subtype") not in _SKIP_SUBTYPES
        and bool(str(message.get("text") or "").strip())
    )


def _parse_conversation(raw: RawDocument) -> Parsed:
    messages: list[dict[str, Any]] = raw.meta["messages"]
    blocks = [Block("text", f"<@{m.get('user', 'someone')}>: {m['text'].strip()}") for m in messages]
    return Parsed(raw.title_hint, blocks)


def conversation_document(
    space: Workspace, channel_id: str, channel_name: str, messages: list[dict[str, Any]], *, acl: list[str]
) -> RawDocument | None:
    """A thread or standalone message as a document; None when nothing in it may be ingested."""
    kept = [m for m in messages if _keep(m, space)]
    if not kept:
        return None
    root_ts = str(messages[0].get("thread_ts") or messages[0]["ts"])
    first_words = " ".join(str(kept[0]["text"]).split()[:8])
    day = datetime.fromtimestamp(float(root_ts), tz=UTC).strftime("%Y-%m-%d")
    slim = [{"user": m.get("user", ""), "ts": m["ts"], "text": m["text"]} for m in kept]
    return RawDocument(
        uri=message_uri(space, channel_id, root_ts),
        source=f"{SCHEME}{channel_id}",
        source_kind="slack",
        data=json.dumps(slim, sort_keys=True).encode("utf-8"),
        parse=_parse_conversation,
        acl=acl,
        title_hint=f"#{channel_name} {day}: {first_words}",
        meta={"messages": slim, "channel_id": channel_id, "ts": root_ts},
    )


def _pages(call: Callable[..., Any], key: str, **params: Any) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        response = call(limit=PAGE_LIMIT, cursor=cursor, **params)
        yield from response.get(key) or []
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return


def _channel_name(client: WebClient, channel_id: str) -> str:
    try:
        return str(client.conversations_info(channel=channel_id)["channel"].get("name") or channel_id)
    except SlackApiError:
        return channel_id


def fetch_thread(client: WebClient, channel_id: str, thread_ts: str) -> list[dict[str, Any]]:
    return list(_pages(client.conversations_replies, "messages", channel=channel_id, ts=thread_ts))


@dataclass
class ChannelSync:
    """A channel's new conversations since `oldest`; `newest` is the cursor to store once they are written."""

    channel_id: str
    oldest: str | None
    newest: str | None = None


def load_channel(
    settings: Settings, sync: ChannelSync, *, acl: list[str] | None = None, client: WebClient | None = None
) -> Iterator[Loaded]:
    """Conversations posted after `sync.oldest` (threads fetched with their replies), newest cursor kept."""
    channel_id = sync.channel_id
    source = f"{SCHEME}{channel_id}"
    if client is None and settings.slack_bot_token is None:
        yield LoadError(source, "SLACK_BOT_TOKEN is not set: cannot read Slack history")
        return
    client = client or make_client(settings)
    try:
        space = workspace(settings, client)
        name = _channel_name(client, channel_id)
        params: dict[str, Any] = {"channel": channel_id}
        if sync.oldest:
            params["oldest"] = sync.oldest
        top_level = [
            m
            for m in _pages(client.conversations_history, "messages", **params)
            if not m.get("thread_ts") or m.get("thread_ts") == m.get("ts")
        ]
    except SlackApiError as exc:
        yield LoadError(source, f"Slack API error: {exc.response.get('error', exc)}")
        return
    newest = max((str(m["ts"]) for m in top_level), key=float, default=None)
    failed = False
    for message in sorted(top_level, key=lambda m: float(m["ts"])):
        conversation = [message]
        if int(message.get("reply_count") or 0) > 0:
            try:
                conversation = fetch_thread(client, channel_id, str(message["ts"])) or [message]
            except SlackApiError as exc:
                failed = True
                yield LoadError(f"{source}/{message['ts']}", f"Slack API error: {exc.response.get('error', exc)}")
                continue
        document = conversation_document(space, channel_id, name, conversation, acl=acl or [channel_id])
        if document is not None:
            yield document
    # A thread that failed keeps the cursor where it was: the next sync retries it (what did go in is
    # unchanged by then and costs nothing).
    sync.newest = sync.oldest if failed else (newest or sync.oldest)


def load_thread(
    settings: Settings, channel_id: str, thread_ts: str, *, acl: list[str] | None = None
) -> Iterator[Loaded]:
    """One thread (the "Save to Lore" shortcut, or a live reply)."""
    client = make_client(settings)
    try:
        space = workspace(settings, client)
        name = _channel_name(client, channel_id)
        messages = fetch_thread(client, channel_id, thread_ts)
    except SlackApiError as exc:
        yield LoadError(f"{SCHEME}{channel_id}/{thread_ts}", f"Slack API error: {exc.response.get('error', exc)}")
        return
    document = conversation_document(space, channel_id, name, messages, acl=acl or [channel_id])
    if document is not None:
        yield document
