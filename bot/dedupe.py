"""De-duplication of Slack deliveries in PostgreSQL, so retries, replicas and event pairs act once.

Slack retries a delivery it thinks failed (X-Slack-Retry-Num), and one post that mentions the bot arrives
both as `app_mention` and as `message`: the first replica to claim a key wins, every later claim loses.
"""

from __future__ import annotations

import itertools
import logging

from lore.config import Settings
from lore.db import raw_connection
from lore.logs import kv

log = logging.getLogger(__name__)

# Keys are kept a day: Slack retries within minutes, so older rows only cost space.
_PRUNE_EVERY = 1000
_claims = itertools.count(1)


def message_key(channel_id: str, ts: str) -> str:
    return f"msg:{channel_id}:{ts}"


def thread_key(channel_id: str, thread_ts: str) -> str:
    return f"thread:{channel_id}:{thread_ts}"


def claim(settings: Settings, *keys: str, kind: str = "") -> bool:
    """Insert every key; True when the last key was new (it decides), False when it was seen before.

    The earlier keys (an event id) are recorded in the same statement, for the record and for retries.
    """
    wanted = [k for k in keys if k]
    if not wanted:
        return True
    with raw_connection(settings) as conn:
        rows = conn.execute(
            "INSERT INTO slack_events (event_id, kind) SELECT k, %s FROM unnest(%s::text[]) AS k "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            (kind, wanted),
        ).fetchall()
        if next(_claims) % _PRUNE_EVERY == 0:
            # Threads the bot answered in, users it greeted and escalation threads are remembered for good.
            conn.execute(
                "DELETE FROM slack_events WHERE received_at < now() - interval '1 day' "
                "AND kind NOT IN ('thread', 'greeting', 'escalation')"
            )
    claimed = {r[0] for r in rows}
    if wanted[-1] not in claimed:
        log.info(kv("slack_duplicate", key=wanted[-1], kind=kind))
        return False
    return True


def mark(settings: Settings, key: str, *, kind: str) -> None:
    """Record a key without deciding anything (e.g. 'the bot answered in this thread')."""
    with raw_connection(settings) as conn:
        conn.execute(
            "INSERT INTO slack_events (event_id, kind) VALUES (%s, %s) ON CONFLICT (event_id) DO NOTHING", (key, kind)
        )


def bot_in_thread(settings: Settings, channel_id: str, thread_ts: str) -> bool:
    """Whether Lore answered in this thread before (an answers row, or the marker the bot leaves)."""
    with raw_connection(settings) as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM answers WHERE channel_id = %s AND thread_ts = %s) "
            "OR EXISTS (SELECT 1 FROM slack_events WHERE event_id = %s)",
            (channel_id, thread_ts, thread_key(channel_id, thread_ts)),
        ).fetchone()
    return bool(row and row[0])
