"""The bot's reads of the database: answers by id or message, their sources, live-indexed channels, App Home
figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lore.config import Settings
from lore.db import raw_connection


@dataclass(frozen=True)
class AnswerRef:
    answer_id: int
    question: str
    channel_id: str | None
    message_ts: str | None
    thread_ts: str | None
    team_id: str | None


_ANSWER_COLUMNS = "id, question, channel_id, message_ts, thread_ts, team_id"


def answer_by_id(settings: Settings, answer_id: int) -> AnswerRef | None:
    with raw_connection(settings) as conn:
        row = conn.execute(f"SELECT {_ANSWER_COLUMNS} FROM answers WHERE id = %s", (answer_id,)).fetchone()
    return AnswerRef(*row) if row else None


def answer_by_message(settings: Settings, channel_id: str, message_ts: str) -> AnswerRef | None:
    with raw_connection(settings) as conn:
        row = conn.execute(
            f"SELECT {_ANSWER_COLUMNS} FROM answers WHERE channel_id = %s AND message_ts = %s", (channel_id, message_ts)
        ).fetchone()
    return AnswerRef(*row) if row else None


def answer_sources(settings: Settings, answer_id: int) -> list[tuple[str, str]]:
    """(uri, title) of the sources an answer cited, in the order it numbered them, each page once."""
    with raw_connection(settings) as conn:
        rows = conn.execute(
            """SELECT c->>'uri', coalesce(c->>'title', '') FROM answers a
               CROSS JOIN LATERAL jsonb_array_elements(
                   CASE WHEN jsonb_typeof(a.citations) = 'array' THEN a.citations ELSE '[]'::jsonb END)
                   WITH ORDINALITY AS e(c, n)
               WHERE a.id = %s AND c->>'uri' IS NOT NULL
               ORDER BY e.n""",
            (answer_id,),
        ).fetchall()
    seen: dict[str, str] = {}
    for uri, title in rows:
        seen.setdefault(str(uri), str(title))
    return list(seen.items())


def live_index_channels(settings: Settings) -> set[str]:
    """Channels whose new messages are indexed as they arrive: the setting plus channel_settings rows."""
    with raw_connection(settings) as conn:
        rows = conn.execute("SELECT channel_id FROM channel_settings WHERE live_index").fetchall()
    return set(settings.csv("live_index_channels")) | {r[0] for r in rows}


def home_figures(settings: Settings, *, with_downvoted: bool) -> dict[str, Any]:
    """What the knowledge base holds and how this week went, in one round trip (two for admins)."""
    with raw_connection(settings) as conn:
        row = conn.execute(
            """
            SELECT (SELECT count(*) FROM documents),
                   (SELECT count(*) FROM chunks),
                   (SELECT count(DISTINCT coalesce(source_root, source_kind)) FROM documents),
                   (SELECT max(updated_at) FROM documents),
                   (SELECT count(*) FROM answers WHERE created_at >= now() - interval '7 days'),
                   (SELECT count(*) FROM votes WHERE value = 1 AND updated_at >= now() - interval '7 days'),
                   (SELECT count(*) FROM votes WHERE value = -1 AND updated_at >= now() - interval '7 days'),
                   (SELECT count(*) FROM source_picks p JOIN votes v USING (answer_id, user_id)
                    WHERE v.value = 1 AND p.created_at >= now() - interval '7 days')
            """
        ).fetchone()
        downvoted: list[dict[str, Any]] = []
        if with_downvoted:
            downvoted = [
                {"answer_id": r[0], "question": r[1], "down": r[2], "channel_id": r[3], "message_ts": r[4]}
                for r in conn.execute(
                    """
                    SELECT a.id, a.question, count(*) AS down, a.channel_id, a.message_ts
                    FROM votes v JOIN answers a ON a.id = v.answer_id
                    WHERE v.value = -1
                    GROUP BY a.id
                    ORDER BY down DESC, a.id DESC
                    LIMIT 5
                    """
                ).fetchall()
            ]
    assert row is not None
    return {
        "documents": row[0],
        "chunks": row[1],
        "sources": row[2],
        "last_sync": row[3],
        "answers_week": row[4],
        "up_week": row[5],
        "down_week": row[6],
        "sources_named_week": row[7],  # 👍 whose voter said which source answered it (and still stands)
        "downvoted": downvoted,
    }


def current_vote(settings: Settings, answer_id: int, user_id: str) -> int | None:
    """The user's vote on an answer (1, -1, or 0 for none); None when the answer does not exist (deleted)."""
    with raw_connection(settings) as conn:
        row = conn.execute(
            "SELECT coalesce((SELECT value FROM votes WHERE answer_id = a.id AND user_id = %s), 0) "
            "FROM answers a WHERE a.id = %s",
            (user_id, answer_id),
        ).fetchone()
    return None if row is None else int(row[0])
