"""What every listener shares (settings, the answerer, the worker client, caches of Slack facts), and how it
reaches them: a middleware puts the one BotState into each request's context, read back with `bot_state`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from slack_bolt import BoltContext, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.channel_modes import ChannelConfig, read_config
from bot.worker_client import WorkerClient
from lore.access import read_memberships
from lore.config import Settings
from lore.logs import kv
from lore.types import Answer, Asker, ImagePart, Turn

if TYPE_CHECKING:
    from bot.pool import AnswerProcesses

log = logging.getLogger(__name__)

# Channel privacy and memberships change rarely; a minute of staleness saves a Web API call per question.
CACHE_TTL_S = 60.0
HISTORY_TURNS = 20
_CONTEXT_KEY = "lore_state"


class Answerer(Protocol):
    """What answers a question: lore.agent.answer_question, or a stand-in with its signature."""

    def __call__(
        self,
        settings: Settings,
        question: str,
        *,
        asker: Asker | None = None,
        history: Sequence[Turn] = (),
        on_token: Callable[[str], None] | None = None,
        generation: dict[str, Any] | None = None,
        parent_id: int | None = None,
        extra_sources: Sequence[Any] = (),
        images: Sequence[ImagePart] = (),
    ) -> Answer: ...


class TtlCache:
    """A small thread-safe cache whose entries expire after `ttl` seconds."""

    def __init__(self, ttl: float = CACHE_TTL_S, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._items: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def forget(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def get_or_load(self, key: str, load: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = load()
        with self._lock:
            if len(self._items) >= self._max:
                self._items.clear()
            self._items[key] = (now + self._ttl, value)
        return value


@dataclass
class BotState:
    """What every listener shares; one per app (bot/app.py), one per answer process (bot/pool.py)."""

    settings: Settings
    answerer: Answerer
    workers: WorkerClient
    cache: TtlCache = field(default_factory=TtlCache)
    # Answers run in other processes (lore serve) when set, else on Bolt's threads.
    pool: AnswerProcesses | None = None
    # Threads for Slack side effects off the listener threads (see in_background), created on first use.
    _background: ThreadPoolExecutor | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def in_background(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run a Slack side effect (an ephemeral offer...) on a few threads of its own, errors logged."""

        def run() -> None:
            try:
                fn(*args, **kwargs)
            except Exception:
                log.exception(kv("background_task_failed", task=getattr(fn, "__name__", "?")))

        with self._lock:
            if self._background is None:
                self._background = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lore-side")
            executor = self._background
        executor.submit(run)

    # -- who asks ------------------------------------------------------------------------------------

    def is_private(self, client: WebClient, channel_id: str, channel_type: str | None = None) -> bool:
        if channel_type in ("im", "mpim", "group") or channel_id.startswith(("D", "G")):
            return True
        if channel_type == "channel":
            return False

        def load() -> bool:
            try:
                info = client.conversations_info(channel=channel_id)["channel"]
            except SlackApiError as exc:
                # Unknown privacy counts as private: exports then leave its answers out by default.
                log.warning(kv("conversations_info_failed", channel=channel_id, error=exc.response.get("error")))
                return True
            return bool(info.get("is_private") or info.get("is_im") or info.get("is_mpim"))

        return bool(self.cache.get_or_load(f"private:{channel_id}", load))

    def channel_config(self, channel_id: str) -> ChannelConfig:
        """The channel's /lore config (cached a minute; saving it forgets the cached one)."""
        if channel_id.startswith("D"):
            return ChannelConfig()
        return self.cache.get_or_load(f"config:{channel_id}", lambda: read_config(self.settings, channel_id))

    def member_channels(self, client: WebClient, user_id: str) -> list[str]:
        return list(self.cache.get_or_load(f"members:{user_id}", lambda: read_memberships(client, user_id)))

    def asker(
        self,
        client: WebClient,
        *,
        user_id: str | None,
        channel_id: str,
        team_id: str | None,
        thread_ts: str | None,
        channel_type: str | None = None,
    ) -> Asker:
        is_dm = channel_type == "im" or channel_id.startswith("D")
        members = self.member_channels(client, user_id) if is_dm and user_id else []
        return Asker(
            user_id=user_id,
            channel_id=channel_id,
            team_id=team_id,
            thread_ts=thread_ts,
            is_dm=is_dm,
            member_channels=members,
            surface="slack",
            private=self.is_private(client, channel_id, channel_type),
        )

    # -- the thread so far ---------------------------------------------------------------------------

    def thread_turns(
        self, client: WebClient, *, channel_id: str, thread_ts: str, before_ts: str, bot_user_id: str | None
    ) -> list[Turn]:
        """Earlier messages of the thread as turns (the bot's own as 'assistant'), oldest first."""
        messages: list[dict[str, Any]] = []
        cursor: str | None = None
        try:
            for _ in range(5):
                page = client.conversations_replies(channel=channel_id, ts=thread_ts, limit=200, cursor=cursor)
                messages.extend(page.get("messages", []))
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
        except SlackApiError as exc:
            log.warning(kv("conversations_replies_failed", channel=channel_id, error=exc.response.get("error")))
            return []
        turns: list[Turn] = []
        for message in sorted(messages, key=lambda m: float(m.get("ts", 0))):
            if float(message.get("ts", 0)) >= float(before_ts):
                continue
            text = strip_mention(message.get("text") or "", bot_user_id)
            if not text:
                continue
            from_bot = bool(message.get("bot_id")) or (bot_user_id is not None and message.get("user") == bot_user_id)
            turns.append(Turn(role="assistant" if from_bot else "user", text=text))
        return turns[-HISTORY_TURNS:]


def strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = text.replace(f"<@{bot_user_id}>", " ")
    return " ".join(text.split())


class ProvideState(Middleware):
    """Bolt middleware: puts the listeners' shared BotState into every request's context."""

    def __init__(self, state: BotState) -> None:
        self.state = state

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse | None:
        req.context[_CONTEXT_KEY] = self.state
        return next()


def bot_state(context: BoltContext) -> BotState:
    """The BotState a listener works with (put there by ProvideState)."""
    state = context.get(_CONTEXT_KEY)
    if not isinstance(state, BotState):
        raise RuntimeError("no BotState in the request context: install ProvideState on the app (bot/app.py)")
    return state
