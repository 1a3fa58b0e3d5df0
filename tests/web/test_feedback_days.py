"""The Feedback page's closed days: computed once into feedback_days, read back while their rows are unchanged, and
computed again (that day only) when an answer or a vote of theirs leaves, arrives or flips; through a real
`lore console`, read from the page's charts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx

from lore.config import Settings
from lore.db import raw_connection
from tests.web.conftest import Console

# Days back from today (UTC) that get answers; each answer gets a vote the same day.
DAYS_BACK = (1, 3, 5)
# A row's time within the UTC day %(day)s (an ISO date), whatever the session's time zone.
ON_DAY = (
    "{column} >= %(day)s::timestamp AT TIME ZONE 'UTC'"
    " AND {column} < %(day)s::timestamp AT TIME ZONE 'UTC' + interval '1 day'"
)


def day(back: int) -> str:
    return (datetime.now(UTC) - timedelta(days=back)).date().isoformat()


def seed(settings: Settings) -> None:
    """Per day back b: 10 * b answers in C0ONE and C0TWO at 06:00-07:00 UTC, latencies 100, 200, ...; a vote on
    each, down on every third."""
    with raw_connection(settings) as conn:
        for back in DAYS_BACK:
            conn.execute(
                """INSERT INTO answers (channel_id, user_id, surface, question, answer, model, latency_ms, created_at)
                   SELECT CASE WHEN n %% 2 = 0 THEN 'C0ONE' ELSE 'C0TWO' END, 'U0ASKER', 'slack', 'q ' || n, 'a',
                          'fake-model', 100 * n,
                          date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                            - make_interval(days => %(back)s) + make_interval(hours => 6, secs => n)
                   FROM generate_series(1, 10 * %(back)s) AS n""",
                {"back": back},
            )
        conn.execute(
            """INSERT INTO votes (answer_id, user_id, value, via, created_at, updated_at)
               SELECT id, 'U0VOTER', CASE WHEN id % 3 = 0 THEN -1 ELSE 1 END, 'reaction',
                      created_at + interval '30 minutes', created_at + interval '30 minutes'
               FROM answers WHERE user_id = 'U0ASKER'"""
        )


def charts(client: httpx.Client) -> dict[str, dict[str, float]]:
    """Each chart of the Feedback page: label → value (the line chart's series as `series label`)."""
    page = client.get("/console/feedback")
    assert page.status_code == 200, page.text[:500]
    found: dict[str, dict[str, float]] = {}
    for name, body in re.findall(r'<svg class="chart" data-chart="([^"]+)"[^>]*>(.*?)</svg>', page.text, re.S):
        marks = re.findall(r'(?:data-series="([^"]+)" )?data-label="([^"]+)" data-value="([^"]+)"', body)
        found[name] = {(f"{s} {label}" if s else label): float(v) for s, label, v in marks}
    return found


def truth(settings: Settings, back: int) -> tuple[int, float, float, int, int]:
    """The day's answers, latency p50 and p95, up and down votes, straight from its rows."""
    with raw_connection(settings) as conn:
        start = "date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - make_interval(days => %(b)s)"
        answers = conn.execute(
            f"""SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
                FROM answers WHERE created_at >= {start} AND created_at < {start} + interval '1 day'""",
            {"b": back},
        ).fetchone()
        votes = conn.execute(
            f"""SELECT count(*) FILTER (WHERE value > 0), count(*) FILTER (WHERE value < 0) FROM votes
                WHERE updated_at >= {start} AND updated_at < {start} + interval '1 day'""",
            {"b": back},
        ).fetchone()
    assert answers is not None and votes is not None
    return int(answers[0]), float(answers[1]), float(answers[2]), int(votes[0]), int(votes[1])


def assert_page_matches_rows(settings: Settings, seen: dict[str, dict[str, float]]) -> None:
    for back in DAYS_BACK:
        answers, p50, p95, up, down = truth(settings, back)
        assert seen["answers per day"][day(back)] == answers, back
        assert seen["latency by day"][f"p50 {day(back)}"] == p50
        assert seen["latency by day"][f"p95 {day(back)}"] == p95
        assert abs(seen["up-rate by day"][day(back)] - 100 * up / (up + down)) < 0.01


def test_closed_days_are_kept_and_computed_again_only_when_their_rows_change(console: Console, kb: Settings) -> None:
    seed(kb)
    admin = console.bearer()
    seen = charts(admin)
    assert_page_matches_rows(kb, seen)
    assert set(seen["up-rate by channel"]) == {"C0ONE", "C0TWO"}
    with raw_connection(kb) as conn:
        kept = dict(conn.execute("SELECT day::text, answers FROM feedback_days").fetchall())
    assert len(kept) == 29  # every closed day of the 30, empty ones too; today is never kept
    assert day(0) not in kept and all(kept[day(b)] == 10 * b for b in DAYS_BACK)

    # A kept day is read, not computed again: a figure written over it shows (while its rows do not change).
    with raw_connection(kb) as conn:
        conn.execute("UPDATE feedback_days SET answers = 999 WHERE day = %s::date", (day(3),))
    assert charts(admin)["answers per day"][day(3)] == 999

    # Rows leave, arrive or flip on past days: those days are computed again and the page matches the rows.
    with raw_connection(kb) as conn:
        conn.execute(  # on day -5, a vote withdrawn and another changed in place (its time unchanged)
            f"DELETE FROM votes WHERE id = (SELECT min(id) FROM votes WHERE {ON_DAY.format(column='updated_at')})",
            {"day": day(5)},
        )
        conn.execute(
            "UPDATE votes SET value = -value"
            f" WHERE id = (SELECT max(id) FROM votes WHERE {ON_DAY.format(column='updated_at')})",
            {"day": day(5)},
        )
        conn.execute(  # an answer (and its vote) imported into day -3, with a slow latency
            """INSERT INTO answers (channel_id, user_id, surface, question, answer, model, latency_ms, created_at)
               VALUES ('C0THREE', 'U0ASKER', 'slack', 'late', 'a', 'fake-model', 90000,
                       %(day)s::timestamp AT TIME ZONE 'UTC' + interval '12 hours')""",
            {"day": day(3)},
        )
        conn.execute(
            """INSERT INTO votes (answer_id, user_id, value, via, created_at, updated_at)
               SELECT id, 'U0VOTER', -1, 'reaction', created_at, created_at FROM answers WHERE question = 'late'"""
        )
        conn.execute(  # an answer of day -1 deleted (its vote goes with it)
            f"DELETE FROM answers WHERE id = (SELECT min(id) FROM answers WHERE {ON_DAY.format(column='created_at')})",
            {"day": day(1)},
        )
    seen = charts(admin)
    assert_page_matches_rows(kb, seen)
    assert seen["answers per day"][day(3)] == 31 and seen["answers per day"][day(1)] == 9
    assert "C0THREE" in seen["up-rate by channel"]
    with raw_connection(kb) as conn:
        assert conn.execute("SELECT answers FROM feedback_days WHERE day = %s::date", (day(3),)).fetchone() == (31,)
