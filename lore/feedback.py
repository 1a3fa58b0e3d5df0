"""Recording feedback: votes (reactions and buttons), comparisons, critiques, and forgetting deleted messages.

Every write is idempotent. Votes are ordered by the Slack event time (`event_ts`): each reaction kind keeps
its latest event in `vote_marks`, and the user's vote in `votes` is recomputed from those marks, so Slack
retries, Celery redeliveries and events that arrive out of order all end in the state the user last chose.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg

from lore.config import Settings
from lore.db import raw_connection
from lore.feedback_memory import note_feedback, refresh_evidence
from lore.logs import kv

log = logging.getLogger(__name__)

VIAS = frozenset({"reaction", "button", "cli", "import", "mcp", "web"})


class FeedbackError(ValueError):
    """Feedback that cannot be recorded (unknown answer, bad value); the message says which."""


def now_ts() -> str:
    """An event time in Slack's format, for feedback that has none (CLI, imports)."""
    return f"{time.time():.6f}"


def _event_ts(event_ts: str | float | None) -> Decimal:
    if event_ts is None:
        return Decimal(now_ts())
    try:
        value = Decimal(str(event_ts))
    except InvalidOperation as exc:
        raise FeedbackError(f"event_ts {event_ts!r} is not a Slack timestamp") from exc
    if not value.is_finite() or value < 0:
        raise FeedbackError(f"event_ts {event_ts!r} is not a Slack timestamp")
    return value.quantize(Decimal("0.000001"))


def reaction_value(settings: Settings, reaction: str) -> int | None:
    """+1 / -1 for a configured vote reaction (skin tones ignored), None for any other reaction."""
    name = reaction.strip().strip(":").split("::", 1)[0]
    if name in settings.csv("up_reactions"):
        return 1
    if name in settings.csv("down_reactions"):
        return -1
    return None


def is_regenerate_reaction(settings: Settings, reaction: str) -> bool:
    return reaction.strip().strip(":").split("::", 1)[0] in settings.csv("regenerate_reactions")


# -- votes ------------------------------------------------------------------------------------------------

# One advisory lock per (answer, user): two workers handling events of the same user never interleave.
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%(answer_id)s::text || ':' || %(user_id)s, 7))"

# The marks of many (answer, user) pairs at once; the vote is the most recent kind still present, none
# present means no vote.
_PAIRS = "unnest(%s::bigint[], %s::text[]) AS p(answer_id, user_id)"
_LOCK_VOTERS = f"SELECT pg_advisory_xact_lock(hashtextextended(p.answer_id::text || ':' || p.user_id, 7)) FROM {_PAIRS}"
_MARKS = """
INSERT INTO vote_marks (answer_id, user_id, value, present, event_ts, via)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::smallint[], %s::boolean[], %s::numeric[], %s::text[])
ON CONFLICT (answer_id, user_id, value) DO UPDATE
SET present = excluded.present, event_ts = excluded.event_ts, via = excluded.via
WHERE vote_marks.event_ts < excluded.event_ts
"""
_RECOMPUTE_DELETE = f"""
DELETE FROM votes v USING {_PAIRS}
WHERE v.answer_id = p.answer_id AND v.user_id = p.user_id
AND NOT EXISTS (SELECT 1 FROM vote_marks m WHERE m.answer_id = p.answer_id AND m.user_id = p.user_id AND m.present)
"""
_RECOMPUTE_UPSERT = f"""
INSERT INTO votes (answer_id, user_id, value, via)
SELECT DISTINCT ON (m.answer_id, m.user_id) m.answer_id, m.user_id, m.value, m.via
FROM {_PAIRS} JOIN vote_marks m ON m.answer_id = p.answer_id AND m.user_id = p.user_id
WHERE m.present
ORDER BY m.answer_id, m.user_id, m.event_ts DESC, m.value DESC
ON CONFLICT (answer_id, user_id) DO UPDATE
SET value = excluded.value, via = excluded.via, updated_at = now()
WHERE (votes.value, votes.via) IS DISTINCT FROM (excluded.value, excluded.via)
"""


def _write_marks(conn: psycopg.Connection[Any], marks: list[dict[str, Any]]) -> None:
    """Apply vote marks ({answer_id, user_id, up, down, via, ts}; up/down None = that kind untouched) in the
    caller's transaction and recompute the affected votes and feedback evidence: one round trip, for one
    event or a batch (feedback is a hot path, hundreds of events a second)."""
    # One row per (answer, user, kind), its latest event (the first of equal times, as one by one would keep).
    latest: dict[tuple[int, str, int], tuple[bool, Decimal, str]] = {}
    for m in marks:
        for value, present in ((1, m["up"]), (-1, m["down"])):
            if present is None:
                continue
            key = (m["answer_id"], m["user_id"], value)
            if key not in latest or latest[key][1] < m["ts"]:
                latest[key] = (bool(present), m["ts"], m["via"])
    rows = sorted(latest.items())
    voters = sorted({(a, u) for (a, u, _), _ in rows})
    pair_params = ([a for a, _ in voters], [u for _, u in voters])
    with conn.pipeline():
        # Locks in one global order (the arrays are sorted), so concurrent batches never deadlock.
        conn.execute(_LOCK_VOTERS, pair_params)
        conn.execute(
            _MARKS,
            (
                [a for (a, _, _), _ in rows],
                [u for (_, u, _), _ in rows],
                [v for (_, _, v), _ in rows],
                [p for _, (p, _, _) in rows],
                [t for _, (_, t, _) in rows],
                [via for _, (_, _, via) in rows],
            ),
        )
        conn.execute(_RECOMPUTE_DELETE, pair_params)
        conn.execute(_RECOMPUTE_UPSERT, pair_params)
        refresh_evidence(conn, pair_params[0])


@contextmanager
def _connection(settings: Settings, conn: psycopg.Connection[Any] | None) -> Iterator[psycopg.Connection[Any]]:
    """The caller's connection (a batch: the caller commits) or a pooled one committed on success."""
    if conn is not None:
        yield conn
        return
    with raw_connection(settings) as own:
        yield own


def _check_vote(via: str, user_id: str | None) -> None:
    if via not in VIAS:
        raise FeedbackError(f"via must be one of {sorted(VIAS)}, not {via!r}")
    if not user_id:
        raise FeedbackError("a vote needs a user id")


def _reaction_marks(value: int, added: bool) -> tuple[bool | None, bool | None]:
    """(up, down) marks for adding or removing one reaction kind: only that kind's mark changes, so removing
    it later falls back to the other kind if that is still on the message (Slack shows both)."""
    return (added if value == 1 else None), (added if value == -1 else None)


def _marks_for(value: int) -> tuple[bool | None, bool | None]:
    """(up, down) marks for a vote: choosing one kind withdraws the other; 0 withdraws both."""
    if value == 1:
        return True, False
    if value == -1:
        return False, True
    if value == 0:
        return False, False
    raise FeedbackError(f"vote value must be 1, -1 or 0 (clear), not {value!r}")


def channel_opted_out(settings: Settings, conn: psycopg.Connection[Any], channel_id: str | None) -> bool:
    """True when feedback in this channel must not be collected (LORE_OPT_OUT_CHANNELS or channel_settings)."""
    if channel_id is None:
        return False
    if channel_id in settings.csv("opt_out_channels"):
        return True
    row = conn.execute("SELECT feedback_opt_out FROM channel_settings WHERE channel_id = %s", (channel_id,)).fetchone()
    return bool(row and row[0])


def record_vote(
    settings: Settings,
    *,
    answer_id: int,
    user_id: str,
    value: int,
    via: str,
    event_ts: str | float | None = None,
    conn: psycopg.Connection[Any] | None = None,
) -> None:
    """Set (1, -1) or clear (0) `user_id`'s vote on an answer; an event older than the last one is ignored.

    With `conn`, the writes join the caller's transaction (batched recording); otherwise they commit here.
    """
    up, down = _marks_for(value)
    _check_vote(via, user_id)
    ts = _event_ts(event_ts)
    with _connection(settings, conn) as conn:
        row = conn.execute("SELECT channel_id FROM answers WHERE id = %s", (answer_id,)).fetchone()
        if row is None:
            raise FeedbackError(f"answer {answer_id} does not exist")
        if channel_opted_out(settings, conn, row[0]):
            log.info(kv("feedback_skipped", reason="opt_out", answer_id=answer_id))
            return
        _write_marks(conn, [{"answer_id": answer_id, "user_id": user_id, "up": up, "down": down, "via": via, "ts": ts}])
    note_feedback(settings)


_ANSWER_BY_MESSAGE = """
SELECT a.id, coalesce(cs.feedback_opt_out, false)
FROM answers a LEFT JOIN channel_settings cs ON cs.channel_id = a.channel_id
WHERE a.channel_id = %s AND a.message_ts = %s
"""


def record_reaction(
    settings: Settings,
    *,
    channel_id: str,
    message_ts: str,
    user_id: str,
    reaction: str,
    added: bool,
    event_ts: str | float | None = None,
    is_bot: bool = False,
    conn: psycopg.Connection[Any] | None = None,
) -> bool:
    """A reaction added to / removed from a message: a vote when it is a vote reaction on a Lore answer.

    Returns False (and records nothing) for other reactions, other messages, bots and opted-out channels.
    Removing a reaction withdraws only that kind: removing 👍 after switching to 👎 keeps the 👎.
    """
    value = reaction_value(settings, reaction)
    if value is None or is_bot or not user_id:
        return False
    ts = _event_ts(event_ts)
    up, down = _reaction_marks(value, added)
    if channel_id in settings.csv("opt_out_channels"):
        return False
    with _connection(settings, conn) as conn:
        row = conn.execute(_ANSWER_BY_MESSAGE, (channel_id, message_ts)).fetchone()
        if row is None or row[1]:
            return False
        mark = {"answer_id": int(row[0]), "user_id": user_id, "up": up, "down": down, "via": "reaction", "ts": ts}
        _write_marks(conn, [mark])
    note_feedback(settings)
    return True


_ANSWERS_BY_MESSAGES = """
SELECT a.channel_id, a.message_ts, a.id, coalesce(cs.feedback_opt_out, false)
FROM answers a LEFT JOIN channel_settings cs ON cs.channel_id = a.channel_id
WHERE (a.channel_id, a.message_ts) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
"""

_ANSWERS_BY_IDS = """
SELECT a.id, coalesce(cs.feedback_opt_out, false) OR a.channel_id = ANY(%s)
FROM answers a LEFT JOIN channel_settings cs ON cs.channel_id = a.channel_id
WHERE a.id = ANY(%s)
"""


def record_vote_events(settings: Settings, events: list[dict[str, Any]], *, conn: psycopg.Connection[Any]) -> int:
    """Record many reactions and votes in the caller's transaction, in a few round trips; returns how many
    were applied (vote reactions on Lore answers, valid votes).

    Each event is {"kind": "reaction" | "vote", ...the keyword arguments of record_reaction / record_vote}.
    The result is the same as recording them one by one: the event time orders each (answer, user)'s events,
    so a batch may hold several events of one user, in any order, and may be re-applied (a redelivery) with
    no effect. Events that cannot be recorded (unknown answer, bad value) are logged and skipped.
    """
    opted_out = settings.csv("opt_out_channels")
    reactions: list[dict[str, Any]] = []
    votes: list[dict[str, Any]] = []
    for event in events:
        kind = event.get("kind")
        if kind == "reaction":
            value = reaction_value(settings, str(event.get("reaction") or ""))
            if value is None or event.get("is_bot") or not event.get("user_id"):
                continue
            if event.get("channel_id") in opted_out:
                continue
            reactions.append({**event, "value": value})
        elif kind == "vote":
            votes.append(event)
        else:
            log.warning(kv("feedback_rejected", reason="unknown_kind", kind=kind))
    by_message: dict[tuple[str, str], tuple[int, bool]] = {}
    if reactions:
        pairs = {(str(e["channel_id"]), str(e["message_ts"])) for e in reactions}
        rows = conn.execute(_ANSWERS_BY_MESSAGES, ([c for c, _ in pairs], [t for _, t in pairs])).fetchall()
        by_message = {(r[0], r[1]): (int(r[2]), bool(r[3])) for r in rows}
    by_id: dict[int, bool] = {}
    if votes:
        ids = sorted({int(e["answer_id"]) for e in votes if str(e.get("answer_id", "")).lstrip("-").isdigit()})
        by_id = {int(r[0]): bool(r[1]) for r in conn.execute(_ANSWERS_BY_IDS, (list(opted_out), ids)).fetchall()}
    marks: list[dict[str, Any]] = []
    for event in reactions:
        target = by_message.get((str(event["channel_id"]), str(event["message_ts"])))
        if target is None or target[1]:
            continue  # not a Lore answer, or its channel opted out
        try:
            ts = _event_ts(event.get("event_ts"))
        except FeedbackError as exc:
            log.warning(kv("feedback_rejected", error=exc))
            continue
        up, down = _reaction_marks(event["value"], bool(event.get("added")))
        marks.append(
            {
                "answer_id": target[0],
                "user_id": str(event["user_id"]),
                "up": up,
                "down": down,
                "via": "reaction",
                "ts": ts,
            }
        )
    for event in votes:
        try:
            answer_id = int(event["answer_id"])
            up, down = _marks_for(int(event["value"]))
            via = str(event.get("via") or "")
            _check_vote(via, event.get("user_id"))
            if answer_id not in by_id:
                raise FeedbackError(f"answer {answer_id} does not exist")
            ts = _event_ts(event.get("event_ts"))
        except (FeedbackError, KeyError, TypeError, ValueError) as exc:
            log.warning(kv("feedback_rejected", error=exc))
            continue
        if by_id[answer_id]:
            continue
        marks.append(
            {"answer_id": answer_id, "user_id": str(event["user_id"]), "up": up, "down": down, "via": via, "ts": ts}
        )
    if not marks:
        return 0
    _write_marks(conn, marks)
    note_feedback(settings)
    return len(marks)


# -- comparisons and critiques ------------------------------------------------------------------------------


def _require_answers(conn: psycopg.Connection[Any], ids: list[int]) -> list[tuple[int, str | None]]:
    rows = conn.execute("SELECT id, channel_id FROM answers WHERE id = ANY(%s)", (ids,)).fetchall()
    found = {int(r[0]) for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise FeedbackError(f"answer {missing[0]} does not exist")
    return [(int(r[0]), r[1]) for r in rows]


def record_comparison(settings: Settings, *, chosen_id: int, rejected_id: int, user_id: str) -> None:
    """`user_id` prefers one answer to another to the same question; their latest choice of the pair wins."""
    if chosen_id == rejected_id:
        raise FeedbackError("a comparison needs two different answers")
    with raw_connection(settings) as conn:
        rows = _require_answers(conn, [chosen_id, rejected_id])
        if any(channel_opted_out(settings, conn, channel) for _, channel in rows):
            return
        conn.execute(_LOCK, {"answer_id": min(chosen_id, rejected_id), "user_id": user_id})
        conn.execute(
            "DELETE FROM comparisons WHERE chosen_id = %s AND rejected_id = %s AND user_id = %s",
            (rejected_id, chosen_id, user_id),
        )
        conn.execute(
            "INSERT INTO comparisons (chosen_id, rejected_id, user_id) VALUES (%s, %s, %s) "
            "ON CONFLICT (chosen_id, rejected_id, user_id) DO NOTHING",
            (chosen_id, rejected_id, user_id),
        )
        # A choice is evidence for the feedback memory (stored with the chosen answer; a reversed choice moves it).
        refresh_evidence(conn, [chosen_id, rejected_id])
    note_feedback(settings)


# The pages an answer showed: those it cited, and those its context passages came from.
_ANSWER_SOURCES = """
SELECT c->>'uri' FROM answers a
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(a.citations) = 'array' THEN a.citations ELSE '[]'::jsonb END) c
WHERE a.id = %(id)s AND c->>'uri' IS NOT NULL
UNION
SELECT d.uri FROM answers a JOIN chunks ch ON ch.id = ANY(a.chunk_ids) JOIN documents d ON d.id = ch.document_id
WHERE a.id = %(id)s
"""


def record_source_pick(settings: Settings, *, answer_id: int, user_id: str, source_uri: str) -> None:
    """`user_id` says which of the answer's sources answered the question ("Which source answered it?" after a 👍).
    Their 👍 then credits that page instead of the answer's main sources; the latest pick wins, and it counts only
    while their vote on the answer is a 👍. A page the answer did not show is refused."""
    source_uri = source_uri.strip()
    with raw_connection(settings) as conn:
        rows = _require_answers(conn, [answer_id])
        if channel_opted_out(settings, conn, rows[0][1]):
            return
        shown = {str(r[0]) for r in conn.execute(_ANSWER_SOURCES, {"id": answer_id}).fetchall()}
        if source_uri not in shown:
            raise FeedbackError(f"{source_uri!r} is not one of the sources of answer {answer_id}")
        conn.execute(_LOCK, {"answer_id": answer_id, "user_id": user_id})
        conn.execute(
            "INSERT INTO source_picks (answer_id, user_id, source_uri) VALUES (%s, %s, %s) "
            "ON CONFLICT (answer_id, user_id) DO UPDATE SET source_uri = excluded.source_uri, created_at = now()",
            (answer_id, user_id, source_uri),
        )
        refresh_evidence(conn, [answer_id])
    note_feedback(settings)


def record_vote_naming_source(
    settings: Settings, *, answer_id: int, user_id: str, value: int, via: str, source_uri: str | None = None
) -> None:
    """A vote from a surface that can also say which source answered it (the CLI, MCP, the web API). The source
    goes with a 👍 only; it is checked and recorded first, so a source the answer did not show records nothing."""
    if source_uri is not None:
        if value != 1:
            raise FeedbackError("a source can only be named with an up vote: the source that answered it")
        record_source_pick(settings, answer_id=answer_id, user_id=user_id, source_uri=source_uri)
    record_vote(settings, answer_id=answer_id, user_id=user_id, value=value, via=via)


_FIND_SOURCE = """
SELECT uri FROM documents
WHERE %(text)s LIKE '%%' || uri || '%%'
ORDER BY length(uri) DESC
LIMIT 1
"""


def record_critique(
    settings: Settings,
    *,
    answer_id: int,
    user_id: str,
    critique: str,
    correction: str | None,
    source_uri: str | None = None,
) -> None:
    """What was wrong with an answer and, optionally, the right answer; a source the correction names (a
    document uri in its text, or `source_uri`) becomes strong evidence for the feedback memory."""
    correction = (correction or "").strip() or None
    critique = critique.strip()
    if not critique and correction is None:
        return
    with raw_connection(settings) as conn:
        rows = _require_answers(conn, [answer_id])
        if channel_opted_out(settings, conn, rows[0][1]):
            return
        if source_uri is None and correction is not None:
            found = conn.execute(_FIND_SOURCE, {"text": correction}).fetchone()
            source_uri = found[0] if found else None
        conn.execute(
            "INSERT INTO critiques (answer_id, user_id, critique, correction, source_uri) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (answer_id, user_id) DO UPDATE "
            "SET critique = excluded.critique, correction = excluded.correction, source_uri = excluded.source_uri",
            (answer_id, user_id, critique, correction, source_uri),
        )
        refresh_evidence(conn, [answer_id])
    note_feedback(settings)


# -- deletion -----------------------------------------------------------------------------------------------


def forget_message(settings: Settings, *, channel_id: str, message_ts: str) -> int:
    """A Slack message was deleted: delete the answers it carried or asked for (and, by cascade, their votes,
    comparisons and critiques). Returns the number of answers deleted."""
    with raw_connection(settings) as conn:
        cur = conn.execute(
            "DELETE FROM answers WHERE channel_id = %s AND (message_ts = %s OR generation->>'question_ts' = %s)",
            (channel_id, message_ts, message_ts),
        )
        deleted = cur.rowcount or 0
    if deleted:
        log.info(kv("feedback_forgot", channel=channel_id, answers=deleted))
    return deleted


# -- stats --------------------------------------------------------------------------------------------------

_TOTALS = """
SELECT (SELECT count(*) FROM answers),
       (SELECT count(*) FROM votes WHERE value > 0),
       (SELECT count(*) FROM votes WHERE value < 0),
       (SELECT count(*) FROM comparisons),
       (SELECT count(*) FROM critiques),
       (SELECT count(*) FROM critiques WHERE correction IS NOT NULL),
       (SELECT count(*) FROM source_picks p JOIN votes v USING (answer_id, user_id) WHERE v.value > 0)
"""

_PER_ANSWER = """
WITH per AS (
    SELECT a.id, a.channel_id, a.surface, a.question, a.created_at,
           count(v.*) FILTER (WHERE v.value > 0) AS up, count(v.*) FILTER (WHERE v.value < 0) AS down
    FROM answers a LEFT JOIN votes v ON v.answer_id = a.id
    GROUP BY a.id
)
"""

_BY = (
    _PER_ANSWER
    + """
SELECT {key} AS key, count(*) AS answers, sum(up)::bigint AS up, sum(down)::bigint AS down
FROM per GROUP BY 1 ORDER BY 1 {order} LIMIT %(limit)s
"""
)

_WORST = (
    _PER_ANSWER
    + """
SELECT id, channel_id, question, up, down FROM per WHERE down > 0
ORDER BY down - up DESC, down DESC, id LIMIT %(limit)s
"""
)


def _rate(up: int, down: int) -> float | None:
    return round(up / (up + down), 4) if up + down else None


def feedback_stats(settings: Settings, *, days: int = 30, limit: int = 10) -> dict[str, Any]:
    """Answers, votes and pairs; up-rate by day, by channel and by surface (slack, cli, mcp...); the most downvoted
    answers."""
    with raw_connection(settings) as conn:
        answers, up, down, pairs, critiques, corrections, named = conn.execute(_TOTALS).fetchone() or (0,) * 7
        by_day = conn.execute(
            _BY.format(key="to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')", order="DESC"), {"limit": days}
        ).fetchall()
        by_channel = conn.execute(_BY.format(key="coalesce(channel_id, '(cli)')", order=""), {"limit": 1000}).fetchall()
        by_surface = conn.execute(_BY.format(key="surface", order=""), {"limit": 100}).fetchall()
        worst = conn.execute(_WORST, {"limit": limit}).fetchall()

    def rows(found: list[Any], name: str) -> list[dict[str, Any]]:
        return [
            {name: key, "answers": int(n), "up": int(u), "down": int(d), "up_rate": _rate(int(u), int(d))}
            for key, n, u, d in found
        ]

    return {
        "answers": int(answers),
        "up": int(up),
        "down": int(down),
        "pairs": int(pairs),
        "critiques": int(critiques),
        "corrections": int(corrections),
        "sources_named": int(named),  # 👍 whose voter said which source answered it
        "up_rate": _rate(int(up), int(down)),
        "by_day": rows(by_day, "day"),
        "by_channel": rows(by_channel, "channel"),
        "by_surface": rows(by_surface, "surface"),
        "most_downvoted": [
            {"answer_id": int(i), "channel": c, "question": q, "up": int(u), "down": int(d)} for i, c, q, u, d in worst
        ],
    }
