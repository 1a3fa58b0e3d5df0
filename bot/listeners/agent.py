"""The agent messaging experience (`features.agent_view`): the Messages tab's first-open greeting and suggested
prompts, status and loading messages while a DM question is answered, and `app_context_changed`, which scopes a
user's next DM answers to the channel they are viewing (only when Slack confirms they are a member of it)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import dedupe
from bot.metrics import EVENTS, record_error
from bot.state import bot_state
from lore.config import Settings
from lore.logs import kv

log = logging.getLogger(__name__)

SUGGESTED_PROMPTS = [
    {"title": "How do I…", "message": "How do I set up my development environment?"},
    {"title": "Where is…", "message": "Where is the on-call runbook?"},
    {"title": "What is our policy on…", "message": "What is our policy on code review?"},
]
PROMPTS_TITLE = "Ask Lore about your team's docs"
GREETING = (
    "Hi! I'm Lore. Ask me anything about your team's docs, runbooks and threads: each answer cites its sources. "
    "Open a channel beside this conversation and I'll include that channel's documents too."
)
STATUS = "is searching your docs…"
LOADING_MESSAGES = ["Searching the knowledge base…", "Reading the passages found…", "Writing the answer…"]
CHANNEL_ENTITY = "slack#/types/channel_id"
# What the user last viewed is worth a day: after that, DM answers go back to their usual scope.
CONTEXT_TTL_S = 24 * 3600
_CONTEXT_PREFIX = "lore:agent_context:"
_redis_lock = threading.Lock()
_redis_clients: dict[str, Any] = {}


def register(app: App) -> None:
    app.event("app_context_changed")(on_context_changed)


# -- the Messages tab ---------------------------------------------------------------------------------------


def on_messages_tab(event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """The user opened Lore's Messages tab: a greeting with suggested prompts, the first time only."""
    EVENTS.labels("app_home_opened_messages").inc()
    state = bot_state(context)
    user_id, channel_id = event.get("user"), event.get("channel")
    if not user_id or not channel_id:
        return
    team = context.team_id or ""
    # Remembered in PostgreSQL (slack_events, kind 'greeting', never pruned): one greeting per user, ever.
    if not dedupe.claim(state.settings, f"greeting:{team}:{user_id}", kind="greeting"):
        return
    posted = client.chat_postMessage(channel=channel_id, text=GREETING)
    try:
        client.assistant_threads_setSuggestedPrompts(
            channel_id=channel_id, thread_ts=str(posted["ts"]), prompts=SUGGESTED_PROMPTS, title=PROMPTS_TITLE
        )
    except SlackApiError as exc:  # the prompts are a nicety: the greeting stands without them
        log.info(kv("suggested_prompts_failed", channel=channel_id, error=exc.response.get("error")))


def show_status(client: WebClient, *, channel_id: str, thread_ts: str) -> None:
    """'is searching…' with rotating loading messages under a DM question, until the answer arrives."""
    try:
        client.assistant_threads_setStatus(
            channel_id=channel_id, thread_ts=thread_ts, status=STATUS, loading_messages=LOADING_MESSAGES
        )
    except SlackApiError as exc:  # an app without assistant:write or agent_view: the answer comes all the same
        log.info(kv("set_status_failed", channel=channel_id, error=exc.response.get("error")))


# -- what the user is viewing -------------------------------------------------------------------------------


def context_user(event: dict[str, Any], body: dict[str, Any]) -> str | None:
    """The viewing user: the event's `user`, else the non-bot authorization Slack sends the event for."""
    if isinstance(event.get("user"), str):
        return str(event["user"])
    for authorization in body.get("authorizations") or []:
        if not authorization.get("is_bot") and authorization.get("user_id"):
            return str(authorization["user_id"])
    return None


def viewed_channel(event: dict[str, Any]) -> str | None:
    """The most relevant channel among the context's entities (Slack orders them by relevance)."""
    for entity in (event.get("context") or {}).get("entities") or []:
        if entity.get("type") == CHANNEL_ENTITY and isinstance(entity.get("value"), str):
            return str(entity["value"])
    return None


def on_context_changed(body: dict[str, Any], event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    EVENTS.labels("app_context_changed").inc()
    state = bot_state(context)
    user_id = context_user(event, body)
    if not user_id:
        return
    team = context.team_id or body.get("team_id") or ""
    channel_id = viewed_channel(event)
    if channel_id is not None and not is_member(client, channel_id, user_id):
        # Never on the user's word (nor the client's): a channel they are not in scopes nothing.
        log.info(kv("agent_context_refused", user=user_id, channel=channel_id))
        channel_id = None
    save_context(state.settings, team, user_id, channel_id)


def is_member(client: WebClient, channel_id: str, user_id: str) -> bool:
    """Asked of Slack each time (conversations.members, page by page); any failure counts as not a member."""
    cursor: str | None = None
    try:
        for _ in range(50):
            page = client.conversations_members(channel=channel_id, limit=1000, cursor=cursor)
            if user_id in (page.get("members") or []):
                return True
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return False
    except SlackApiError as exc:
        log.info(kv("conversations_members_failed", channel=channel_id, error=exc.response.get("error")))
    return False


def _redis(settings: Settings) -> Any | None:
    if not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        return None  # an AMQP broker: no shared store for the context, DM answers keep their usual scope
    with _redis_lock:
        client = _redis_clients.get(settings.redis_url)
        if client is None:
            import redis

            client = _redis_clients[settings.redis_url] = redis.Redis.from_url(
                settings.redis_url, socket_connect_timeout=2, socket_timeout=2
            )
        return client


def save_context(settings: Settings, team_id: str, user_id: str, channel_id: str | None) -> None:
    try:
        store = _redis(settings)
        if store is None:
            return
        key = f"{_CONTEXT_PREFIX}{team_id}:{user_id}"
        if channel_id is None:
            store.delete(key)
        else:
            store.set(key, channel_id, ex=CONTEXT_TTL_S)
    except Exception:
        record_error("agent_context")
        log.exception(kv("agent_context_save_failed", user=user_id))


def load_context(settings: Settings, team_id: str | None, user_id: str | None) -> str | None:
    """The channel (membership checked when it was viewed) that scopes this user's next DM answers, if any."""
    if not user_id:
        return None
    try:
        store = _redis(settings)
        value = store.get(f"{_CONTEXT_PREFIX}{team_id or ''}:{user_id}") if store is not None else None
    except Exception:
        record_error("agent_context")
        log.exception(kv("agent_context_load_failed", user=user_id))
        return None
    return value.decode() if isinstance(value, bytes) else value
