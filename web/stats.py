"""The Feedback page's numbers: answers, votes, latency and the feedback memory's effect, by day and by channel.

Each day before today is computed once and kept in `feedback_days` (shared by every process, kept across restarts)
with a stamp of the rows it was computed from; a page view checks the month's stamps (two index-only scans of the
answers' and votes' time indexes), recomputes only the days whose stamp moved and today, and reads the rest, so it
costs a few small aggregates however many answers there are (bench/console.py: 100,000 answers, 50,000 votes).
The page is for admins, who may not be in every channel: what a private conversation said (question, answer,
sources, critiques) is left out, its counts are not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from lore.config import Settings
from lore.db import raw_connection

# Days are UTC days (24 hours, whatever the session's time zone). An answer's day is when it was given; a vote's
# day is when it was last cast or changed.
#
# A day's stamp: its answers (count, largest id) and its votes (count, sum of values, largest id). Rows mostly
# leave a closed day (an answer deleted, a vote withdrawn or changed, which moves it to today); any row that
# leaves, arrives or flips moves one of these, and then the day is computed again. The votes' count and sum also
# give the day's up and down votes (values are +1 and -1).
_STAMPS = """
SELECT s, a.n, a.last, v.n, v.total, v.last
FROM unnest(%(starts)s::timestamptz[]) AS s,
LATERAL (SELECT count(*) AS n, coalesce(max(id), 0) AS last FROM answers
         WHERE created_at >= s AND created_at < s + interval '24 hours') AS a,
LATERAL (SELECT count(*) AS n, coalesce(sum(value), 0) AS total, coalesce(max(id), 0) AS last FROM votes
         WHERE updated_at >= s AND updated_at < s + interval '24 hours') AS v
"""
_LATENCY = """
SELECT s, l.p[1], l.p[2]
FROM unnest(%(starts)s::timestamptz[]) AS s,
LATERAL (SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY latency_ms) AS p FROM answers
         WHERE created_at >= s AND created_at < s + interval '24 hours') AS l
"""
# Votes by the channel of their answer, looked up from an index that carries it (ix_answers_id): the cost follows
# the days' votes, not the whole answers table.
_CHANNELS = """
SELECT s, c.channel, c.up, c.down
FROM unnest(%(starts)s::timestamptz[]) AS s,
LATERAL (SELECT coalesce(a.channel_id, '(' || a.surface || ')') AS channel,
                count(*) FILTER (WHERE v.value > 0) AS up, count(*) FILTER (WHERE v.value < 0) AS down
         FROM votes v JOIN answers a ON a.id = v.answer_id
         WHERE v.updated_at >= s AND v.updated_at < s + interval '24 hours'
         GROUP BY 1) AS c
"""
_STORED = """
SELECT day, stamp, answers, latency_p50, latency_p95, up, down, channels FROM feedback_days
WHERE day >= %(first)s AND day < %(today)s
"""
_STORE = """
INSERT INTO feedback_days (day, stamp, answers, latency_p50, latency_p95, up, down, channels, computed_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (day) DO UPDATE SET stamp = excluded.stamp, answers = excluded.answers,
    latency_p50 = excluded.latency_p50, latency_p95 = excluded.latency_p95, up = excluded.up, down = excluded.down,
    channels = excluded.channels, computed_at = excluded.computed_at
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
       (SELECT count(*) FROM comparisons), (SELECT count(*) FROM critiques),
       (SELECT count(*) FROM source_picks p JOIN votes v USING (answer_id, user_id) WHERE v.value > 0)
FROM votes
"""


@dataclass
class _Day:
    """One UTC day's figures."""

    day: date
    stamp: list[int]
    answers: int
    p50: float | None = None
    p95: float | None = None
    up: int = 0
    down: int = 0
    channels: dict[str, list[int]] = field(default_factory=dict)


def _stamps(conn: psycopg.Connection[Any], starts: list[datetime]) -> dict[date, list[int]]:
    rows = conn.execute(_STAMPS, {"starts": starts}).fetchall()
    return {s.astimezone(UTC).date(): [int(x) for x in rest] for s, *rest in rows}


def _compute(conn: psycopg.Connection[Any], starts: list[datetime], stamps: dict[date, list[int]]) -> list[_Day]:
    """The figures of these days (their stamps already read): latency percentiles and votes by channel, from the
    days' rows alone."""
    days: dict[date, _Day] = {}
    for s in starts:
        stamp = stamps[s.date()]
        answers, _, votes, total, _ = stamp
        days[s.date()] = _Day(s.date(), stamp, answers, up=(votes + total) // 2, down=(votes - total) // 2)
    for s, p50, p95 in conn.execute(_LATENCY, {"starts": starts}):
        found = days[s.astimezone(UTC).date()]
        found.p50, found.p95 = p50, p95
    for s, channel, up, down in conn.execute(_CHANNELS, {"starts": starts}):
        days[s.astimezone(UTC).date()].channels[str(channel)] = [int(up), int(down)]
    return list(days.values())


def _month(conn: psycopg.Connection[Any], start: datetime, today: datetime) -> list[_Day]:
    """Every day from `start` to today: the closed ones from feedback_days while their stamps hold (the others
    computed again and stored), today's computed."""
    starts = [start + timedelta(days=k) for k in range((today - start).days + 1)]
    stamps = _stamps(conn, starts)
    stored = {
        day: _Day(day, list(stamp), n, p50, p95, up, down, dict(channels))
        for day, stamp, n, p50, p95, up, down, channels in conn.execute(
            _STORED, {"first": start.date(), "today": today.date()}
        )
    }
    stale = [s for s in starts[:-1] if (kept := stored.get(s.date())) is None or kept.stamp != stamps[s.date()]]
    fresh = {d.day: d for d in _compute(conn, [*stale, today], stamps)}
    if stale:
        kept_now = [fresh[s.date()] for s in stale]  # in day order, as every writer: no deadlock between two views
        with conn.cursor() as cur:
            cur.executemany(
                _STORE,
                [(d.day, d.stamp, d.answers, d.p50, d.p95, d.up, d.down, json.dumps(d.channels)) for d in kept_now],
            )
    return [fresh.get(s.date()) or stored[s.date()] for s in starts]


def _rate(up: int, down: int) -> float | None:
    return round(up / (up + down), 4) if up + down else None


def feedback_page(settings: Settings, *, acl: list[str], days: int = 30, limit: int = 10) -> dict[str, Any]:
    """Everything the Feedback page charts and lists, for the last `days` UTC days (today included); documents
    are named only within `acl` (the viewer's)."""
    params = {"days": days, "limit": limit, "acl": acl}
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days - 1)
    with raw_connection(settings) as conn:
        month = _month(conn, start, today)
        worst = conn.execute(_WORST, params).fetchall()
        raised = conn.execute(_MEMORY.format(order="DESC", sign=">"), params).fetchall()
        lowered = conn.execute(_MEMORY.format(order="ASC", sign="<"), params).fetchall()
        pairs = conn.execute(_PAIRS, params).fetchall()
        up, down, comparisons, critiques, named = conn.execute(_TOTALS).fetchone() or (0,) * 5
    per_day = [(d.day.isoformat(), d.answers, d.p50, d.p95) for d in month if d.answers]
    votes_day = {d.day.isoformat(): (d.up, d.down) for d in month if d.up or d.down}
    channels: dict[str, tuple[int, int]] = {}
    for d in month:
        for channel, (u, n) in d.channels.items():
            before = channels.get(channel, (0, 0))
            channels[channel] = (before[0] + u, before[1] + n)
    by_channel = sorted(channels.items(), key=lambda item: -(item[1][0] + item[1][1]))[:12]
    answers = sum(n for _, n, _, _ in per_day)
    days_list = [d for d, *_ in per_day]
    return {
        "totals": {
            "answers": int(answers), "up": int(up), "down": int(down), "up_rate": _rate(int(up), int(down)),
            "pairs": int(comparisons), "critiques": int(critiques), "sources_named": int(named),
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
