"""Who may see what outside a Slack channel: the permissions of a DM with Lore, for any surface that acts as a
user (MCP, the console): public documents plus those of the channels the user is a member of.

Memberships come from Slack's `users.conversations` (public and private channels, archived ones left out) when
a bot token is configured, read by `read_memberships`, which the bot uses for a DM too; without Slack, or when
Slack does not answer, the user sees public documents only: a failure never widens access.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from lore.config import Settings
from lore.logs import kv
from lore.types import Asker

log = logging.getLogger(__name__)

# Memberships change rarely; a minute of staleness saves a Web API call per request (as in the bot).
MEMBERSHIP_TTL_S = 60.0
_MAX_PAGES = 10

_cache: dict[tuple[str, str], tuple[float, list[str]]] = {}
_lock = threading.Lock()


def _client(settings: Settings) -> Any:
    from slack_sdk import WebClient

    assert settings.slack_bot_token is not None
    return WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url, timeout=15)


def read_memberships(client: Any, user_id: str) -> list[str]:
    """The channels `user_id` is a member of, from `users.conversations` through `client` (a slack_sdk WebClient),
    page by page. When Slack fails, the channels read so far (a failure never adds any); the bot and MCP share it."""
    from slack_sdk.errors import SlackApiError

    channels: list[str] = []
    cursor: str | None = None
    try:
        for _ in range(_MAX_PAGES):
            page = client.users_conversations(
                user=user_id, types="public_channel,private_channel", exclude_archived=True, limit=999, cursor=cursor
            )
            channels.extend(str(c["id"]) for c in page.get("channels") or [])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
    except SlackApiError as exc:
        log.warning(kv("users_conversations_failed", user=user_id, error=exc.response.get("error")))
    except OSError as exc:  # Slack unreachable (urllib's errors are OSErrors)
        log.warning(kv("users_conversations_failed", user=user_id, error=type(exc).__name__))
    return channels


def member_channels(settings: Settings, user_id: str) -> list[str]:
    """The channels `user_id` is a member of (empty without Slack), cached for MEMBERSHIP_TTL_S."""
    if settings.slack_bot_token is None or not user_id:
        return []
    key = (settings.slack_api_url, user_id)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] > now:
            return list(hit[1])
    channels = read_memberships(_client(settings), user_id)
    with _lock:
        if len(_cache) >= 10_000:
            _cache.clear()
        _cache[key] = (now + MEMBERSHIP_TTL_S, channels)
    return list(channels)


def dm_asker(settings: Settings, user_id: str, *, surface: str) -> Asker:
    """`user_id` asking as in a DM with Lore, from `surface` (its answers are recorded as private, like a DM's)."""
    return Asker(user_id=user_id, is_dm=True, member_channels=member_channels(settings, user_id), surface=surface)


def clear_cache() -> None:
    with _lock:
        _cache.clear()
