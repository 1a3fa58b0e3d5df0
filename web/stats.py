"""The Feedback page's numbers: answers, votes, latency and the feedback memory's effect, by day and by channel.

Every query reads a window of days through the indexes on answers.created_at and votes.answer_id, so the page
stays fast however many answers there are (bench/console.py: 100,000 answers, 50,000 votes). The page is for
admins, who may not be in every channel: what a private conversation said (question, answer, sources, critiques)
is left out, its counts are not.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from lore.config import Settings
from lore.db import raw_connection

_PER_DAY = """
SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
FROM answers WHERE created_at >= now() - make_interval(days => %(days)s)
GROUP BY 1 ORDER BY 1
"""
_VOTES_PER_DAY = """
SELECT to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
       count(*) FILTER (WHERE v.value > 0), count(*) FILTER (WHERE v.value < 0)
FROM answers a JOIN votes v ON v.answer_id = a.id
WHERE a.created_at >= now() - make_interval(days => %(days)s)
GROUP BY 1 ORDER BY 1
"""
_BY_CHANNEL = """
SELECT coalesce(a.channel_id, '(' || a.surface || ')'), count(*) FILTER (WHERE v.value > 0),
       count(*) FILTER (WHERE v.value < 0)
FROM answers a JOIN votes v ON v.answer_id = a.id
WHERE a.created_at >= now() - make_interval(days => %(days)s)
GROUP BY 1 ORDER BY count(*) DESC LIMIT 12
"""
_WORST = """
WITH tally AS (
    SELECT answer_id, count(*) FILTER (WHERE value > 0) AS up, count(*) FILTER (WHERE value < 0) AS down
    FROM votes GROUP BY answer_id HAVING count(*) FILTER (WHERE value < 0) > 0
    ORDER BY count(*) FILTER (WHERE value < 0) - count(*) FILTER (WHERE value > 0) DESC, answer_id DESC
    LIMIT %(limit)s
)
SELECT a.id, CASE WHEN a.private THEN NULL ELSE a.question END, CASE WHEN a.private THEN NULL ELSE a.answer END,
       CASE WHEN a.private THEN '[]'::jsonb ELSE a.citations END, t.up, t.down,
       (SELECT array_agg(c.critique || coalesce(' → ' || c.correction, '')) FROM critiques c
        WHERE c.answer_id = a.id AND NOT a.private)
FROM tally t JOIN answers a ON a.id = t.answer_id
ORDER BY t.down - t.up DESC, a.id DESC
"""
_MEMORY = """
SELECT d.id, d.title, d.uri, e.total FROM (
    SELECT document_id, sum(w) AS total FROM feedback_evidence GROUP BY document_id
    ORDER BY sum(w) {order} LIMIT %(limit)s
) e JOIN documents d ON d.id = e.document_id
WHERE e.total {sign} 0 ORDER BY e.total {order}
"""
_PAIRS = """
SELECT c.id, c.chosen_id, c.rejected_id, c.user_id, CASE WHEN a.private THEN NULL ELSE a.question END, c.created_at
FROM comparisons c JOIN answers a ON a.id = c.chosen_id ORDER BY c.id DESC LIMIT %(limit)s
"""
_TOTALS = """
SELECT (SELECT count(*) FROM answers WHERE created_at >= now() - make_interval(days => %(days)s)),
       (SELECT count(*) FROM votes WHERE value > 0), (SELECT count(*) FROM votes WHERE value < 0),
       (SELECT count(*) FROM comparisons), (SELECT count(*) FROM critiques)
"""


def _rate(up: int, down: int) -> float | None:
    return round(up / (up + down), 4) if up + down else None


def feedback_page(settings: Settings, *, days: int = 30, limit: int = 10) -> dict[str, Any]:
    """Everything the Feedback page charts and lists, for the last `days` days."""
    params = {"days": days, "limit": limit}
    with raw_connection(settings) as conn:
        per_day = conn.execute(_PER_DAY, params).fetchall()
        votes_day = {d: (int(u), int(n)) for d, u, n in conn.execute(_VOTES_PER_DAY, params)}
        by_channel = conn.execute(_BY_CHANNEL, params).fetchall()
        worst = conn.execute(_WORST, params).fetchall()
        raised = conn.execute(_MEMORY.format(order="DESC", sign=">"), params).fetchall()
        lowered = conn.execute(_MEMORY.format(order="ASC", sign="<"), params).fetchall()
        pairs = conn.execute(_PAIRS, params).fetchall()
        answers, up, down, comparisons, critiques = conn.execute(_TOTALS, params).fetchone() or (0,) * 5
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
        "up_rate_by_channel": [(c, _rate(int(u), int(n)), int(u), int(n)) for c, u, n in by_channel],
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
