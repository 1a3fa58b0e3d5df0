"""The Feedback page's numbers: answers, votes, latency and the feedback memory's effect, by day and by channel.

The month's closed days are computed once and kept while nothing in them changed (rows only ever leave a closed
day), so a page view reads today's rows and a few small aggregates, however many answers there are
(bench/console.py: 100,000 answers, 50,000 votes). The page is for
admins, who may not be in every channel: what a private conversation said (question, answer, sources, critiques)
is left out, its counts are not.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from lore.config import Settings
from lore.db import database_url, raw_connection

# Days are UTC days. An answer's day is when it was given; a vote's day is when it was last cast or changed.
_ANSWER_DAYS = """
SELECT (created_at AT TIME ZONE 'UTC')::date::text AS day, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
FROM answers WHERE created_at >= %(start)s AND created_at < %(end)s
GROUP BY 1 ORDER BY 1
"""
_VOTE_DAYS = """
SELECT (updated_at AT TIME ZONE 'UTC')::date::text, count(*) FILTER (WHERE value > 0), count(*) FILTER (WHERE value < 0)
FROM votes WHERE updated_at >= %(start)s AND updated_at < %(end)s
GROUP BY 1 ORDER BY 1
"""
_VOTE_CHANNELS = """
SELECT coalesce(a.channel_id, '(' || a.surface || ')'), count(*) FILTER (WHERE v.value > 0),
       count(*) FILTER (WHERE v.value < 0)
FROM votes v JOIN answers a ON a.id = v.answer_id
WHERE v.updated_at >= %(start)s AND v.updated_at < %(end)s
GROUP BY 1
"""
# What the closed days' figures depend on: rows only leave those days (deleted answers, votes withdrawn or
# changed, which moves them to today), so their counts and largest ids say whether a cached copy still holds.
_CLOSED_STAMP = """
SELECT (SELECT count(*) FROM answers WHERE created_at >= %(start)s AND created_at < %(end)s),
       (SELECT count(*) FROM votes WHERE updated_at >= %(start)s AND updated_at < %(end)s),
       (SELECT coalesce(max(id), 0) FROM votes WHERE updated_at >= %(start)s AND updated_at < %(end)s)
"""
# The answers with the most downvotes (a partial index holds the downvotes), then their upvotes.
_WORST = """
WITH down AS (
    SELECT answer_id, count(*) AS down FROM votes WHERE value < 0
    GROUP BY answer_id ORDER BY count(*) DESC, answer_id DESC LIMIT %(limit)s
)
SELECT a.id, CASE WHEN a.private THEN NULL ELSE a.question END, CASE WHEN a.private THEN NULL ELSE a.answer END,
       CASE WHEN a.private THEN '[]'::jsonb ELSE a.citations END,
       (SELECT count(*) FROM votes u WHERE u.answer_id = a.id AND u.value > 0), d.down,
       (SELECT array_agg(c.critique || coalesce(' → ' || c.correction, '')) FROM critiques c
        WHERE c.answer_id = a.id AND NOT a.private)
FROM down d JOIN answers a ON a.id = d.answer_id
ORDER BY d.down DESC, a.id DESC
"""
# Only documents the viewer may see: a private channel's page is not named to someone outside it.
_MEMORY = """
SELECT d.id, d.title, d.uri, e.total
FROM (SELECT document_id, sum(w) AS total FROM feedback_evidence GROUP BY document_id) e
JOIN documents d ON d.id = e.document_id
WHERE d.acl && %(acl)s::text[] AND e.total {sign} 0
ORDER BY e.total {order} LIMIT %(limit)s
"""
_PAIRS = """
SELECT c.id, c.chosen_id, c.rejected_id, c.user_id, CASE WHEN a.private THEN NULL ELSE a.question END, c.created_at
FROM comparisons c JOIN answers a ON a.id = c.chosen_id ORDER BY c.id DESC LIMIT %(limit)s
"""
_TOTALS = """
SELECT count(*) FILTER (WHERE value > 0), count(*) FILTER (WHERE value < 0),
       (SELECT count(*) FROM comparisons), (SELECT count(*) FROM critiques)
FROM votes
"""


@dataclass
class _Window:
    """Per-day answers and latency, per-day votes and votes by channel, for one span of days."""

    answer_days: list[tuple[str, int, float | None, float | None]]
    vote_days: list[tuple[str, int, int]]
    channels: dict[str, tuple[int, int]]


_closed: dict[tuple[str, str], tuple[tuple[Any, ...], _Window]] = {}
_closed_lock = threading.Lock()


def _window(conn: psycopg.Connection[Any], start: datetime, end: datetime) -> _Window:
    span = {"start": start, "end": end}
    return _Window(
        answer_days=[(d, int(n), p50, p95) for d, n, p50, p95 in conn.execute(_ANSWER_DAYS, span)],
        vote_days=[(d, int(u), int(n)) for d, u, n in conn.execute(_VOTE_DAYS, span)],
        channels={c: (int(u), int(n)) for c, u, n in conn.execute(_VOTE_CHANNELS, span)},
    )


def _closed_days(settings: Settings, conn: psycopg.Connection[Any], start: datetime, today: datetime) -> _Window:
    """The days before today, computed once and kept while their stamp holds: a page view pays for today's rows,
    not for the whole month's."""
    key = (database_url(settings), start.isoformat())
    stamp = tuple(conn.execute(_CLOSED_STAMP, {"start": start, "end": today}).fetchone() or ())
    with _closed_lock:
        hit = _closed.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    window = _window(conn, start, today)
    with _closed_lock:
        if len(_closed) > 64:
            _closed.clear()
        _closed[key] = (stamp, window)
    return window


def _rate(up: int, down: int) -> float | None:
    return round(up / (up + down), 4) if up + down else None


def feedback_page(settings: Settings, *, acl: list[str], days: int = 30, limit: int = 10) -> dict[str, Any]:
    """Everything the Feedback page charts and lists, for the last `days` UTC days (today included); documents
    are named only within `acl` (the viewer's)."""
    params = {"days": days, "limit": limit, "acl": acl}
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days - 1)
    with raw_connection(settings) as conn:
        conn.execute("SET LOCAL work_mem = '32MB'")  # the percentiles sort a month of latencies in memory
        closed = _closed_days(settings, conn, start, today)
        live = _window(conn, today, datetime.max.replace(tzinfo=UTC))
        worst = conn.execute(_WORST, params).fetchall()
        raised = conn.execute(_MEMORY.format(order="DESC", sign=">"), params).fetchall()
        lowered = conn.execute(_MEMORY.format(order="ASC", sign="<"), params).fetchall()
        pairs = conn.execute(_PAIRS, params).fetchall()
        up, down, comparisons, critiques = conn.execute(_TOTALS).fetchone() or (0,) * 4
    per_day = closed.answer_days + live.answer_days
    votes_day = {d: (u, n) for d, u, n in closed.vote_days + live.vote_days}
    channels = dict(closed.channels)
    for channel, (u, n) in live.channels.items():
        before = channels.get(channel, (0, 0))
        channels[channel] = (before[0] + u, before[1] + n)
    by_channel = sorted(channels.items(), key=lambda item: -(item[1][0] + item[1][1]))[:12]
    answers = sum(n for _, n, _, _ in per_day)
    days_list = [d for d, *_ in per_day]
    return {
        "totals": {
            "answers": int(answers), "up": int(up), "down": int(down), "up_rate": _rate(int(up), int(down)),
            "pairs": int(comparisons), "critiques": int(critiques),
        },
        "days": days_list,
        "answers_per_day": [(d, int(n)) for d, n, *_ in per_day],
        "latency_p50": [float(p50) if p50 is not None else None for *_, p50, _ in per_day],
        "latency_p95": [float(p95) if p95 is not None else None for *_, p95 in per_day],
        "up_rate_by_day": [(d, _rate(*votes_day[d])) for d in sorted(votes_day) if _rate(*votes_day[d]) is not None],
        "votes_by_day": {d: {"up": u, "down": n} for d, (u, n) in votes_day.items()},
        "up_rate_by_channel": [(c, _rate(u, n), u, n) for c, (u, n) in by_channel],
        "most_downvoted": [
            {"answer_id": int(i), "question": q, "answer": a, "citations": cit, "up": int(u), "down": int(n),
             "critiques": list(crit or [])}
            for i, q, a, cit, u, n, crit in worst
        ],
        "raised": [{"id": int(i), "title": t, "uri": u, "weight": float(w)} for i, t, u, w in raised],
        "lowered": [{"id": int(i), "title": t, "uri": u, "weight": float(w)} for i, t, u, w in lowered],
        "pairs": [
            {"id": int(i), "chosen": int(c), "rejected": int(r), "user": u, "question": q, "created_at": t.isoformat()}
            for i, c, r, u, q, t in pairs
        ],
        "reward": reward_metrics(settings),
    }  # fmt: skip


def reward_metrics(settings: Settings) -> dict[str, Any] | None:
    """The reward model's held-out accuracy as `lore feedback train-reward` saved it, or None before training."""
    from lore.reward import model_path

    path = model_path(settings)
    if not path.exists():
        return None
    try:
        with np.load(path) as saved:
            return dict(json.loads(str(saved["meta"])))
    except (OSError, ValueError, KeyError):
        return None
