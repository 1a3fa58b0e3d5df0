"""The console's reads of PostgreSQL: answers and their traces, documents and passages, ingest jobs, sync state.

Answers are shown to the user who asked them and to admins; documents and passages only within the caller's
ACL (the same `acl && visible` filter as search), so a document outside it reads as one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lore.config import Settings
from lore.db import raw_connection
from lore.search import visible_acl
from lore.types import Asker


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


_ANSWER = """
SELECT a.id, a.user_id, a.surface, a.channel_id, a.question, a.answer, a.model, a.citations, a.chunk_ids,
       a.generation, a.latency_ms, a.prompt_tokens, a.completion_tokens, a.parent_id, a.created_at, a.private,
       coalesce((SELECT count(*) FROM votes v WHERE v.answer_id = a.id AND v.value > 0), 0),
       coalesce((SELECT count(*) FROM votes v WHERE v.answer_id = a.id AND v.value < 0), 0),
       (SELECT v.value FROM votes v WHERE v.answer_id = a.id AND v.user_id = %(user)s),
       (SELECT array_agg(r.id ORDER BY r.id) FROM answers r WHERE r.parent_id = a.id)
FROM answers a WHERE a.id = %(id)s AND (%(admin)s OR a.user_id = %(user)s)
"""


def answer(settings: Settings, answer_id: int, *, user_id: str, admin: bool) -> dict[str, Any] | None:
    """One answer as GET /api/v1/answers/{id} returns it, or None when missing or not the caller's to see."""
    with raw_connection(settings) as conn:
        row = conn.execute(_ANSWER, {"id": answer_id, "user": user_id, "admin": admin}).fetchone()
    if row is None:
        return None
    (id_, user, surface, channel, question, text, model, citations, chunk_ids, generation, latency, ptok, ctok,
     parent, created, private, up, down, mine, regenerations) = row  # fmt: skip
    return {
        "answer_id": int(id_),
        "user": user,
        "surface": surface,
        "channel": channel,
        "question": question,
        "answer": text,
        "model": model,
        "citations": citations,
        "chunk_ids": [int(c) for c in chunk_ids],
        "generation": generation,
        "latency_ms": latency,
        "prompt_tokens": ptok,
        "completion_tokens": ctok,
        "parent_id": parent,
        "private": bool(private),
        "regenerations": [int(r) for r in regenerations or []],
        "created_at": _iso(created),
        "votes": {"up": int(up), "down": int(down), "mine": {1: "up", -1: "down"}.get(mine)},
    }


def prompt_messages(settings: Settings, answer_id: int) -> list[dict[str, Any]]:
    """The exact messages the model saw for an answer (callers check the answer is the caller's first)."""
    with raw_connection(settings) as conn:
        row = conn.execute("SELECT prompt FROM answers WHERE id = %s", (answer_id,)).fetchone()
    return list(row[0]) if row else []


def passages(settings: Settings, chunk_ids: list[int], *, asker: Asker | None) -> list[dict[str, Any]]:
    """The passages with these ids that the asker may see, in the given order."""
    with raw_connection(settings) as conn:
        rows = conn.execute(
            """SELECT id, document_id, uri, title, heading, text FROM chunks
               WHERE id = ANY(%s) AND acl && %s::text[]""",
            (chunk_ids, visible_acl(asker)),
        ).fetchall()
    by_id = {int(r[0]): r for r in rows}
    return [
        {"chunk_id": i, "document_id": int(r[1]), "uri": r[2], "title": r[3], "heading": r[4], "text": r[5]}
        for i in chunk_ids
        if (r := by_id.get(i)) is not None
    ]


def cited_passages(
    settings: Settings, citations: list[dict[str, Any]], chunk_ids: list[int], asker: Asker
) -> list[dict[str, Any]]:
    """Each citation with the first passage of its source the answer used: what a click on [n] opens."""
    found = passages(settings, chunk_ids, asker=asker)
    first: dict[str, dict[str, Any]] = {}
    for passage in found:
        first.setdefault(passage["uri"], passage)
    out = []
    for number, citation in enumerate(citations, start=1):
        passage = first.get(citation["uri"], {})
        out.append(
            {
                "number": citation.get("number", number),
                "uri": citation["uri"],
                "title": citation["title"],
                "heading": passage.get("heading", ""),
                "text": passage.get("text", ""),
                "chunk_id": passage.get("chunk_id"),
            }
        )
    return out


HIDDEN = "(hidden: a private conversation, or documents of a channel you are not in)"


def redact(found: dict[str, Any], visible: list[dict[str, Any]], *, user_id: str) -> bool:
    """Hide from an admin who did not ask it an answer given in a private conversation (a DM, the console, a private
    channel: question too) or one that used passages they may not see; True when hidden. An asker always sees
    their own answers."""
    partial = len({p["chunk_id"] for p in visible}) < len(set(found["chunk_ids"]))
    if found["user"] == user_id or not (found["private"] or partial):
        return False
    uris = {p["uri"] for p in visible}
    found["answer"] = HIDDEN
    found["citations"] = [c for c in found["citations"] if c.get("uri") in uris]
    if found["private"]:
        found["question"] = HIDDEN
    return True


_ANSWERS_LIST = """
SELECT a.id, a.user_id, a.surface,
       CASE WHEN a.private AND a.user_id IS DISTINCT FROM %(user)s THEN NULL ELSE a.question END,
       a.model, a.latency_ms, a.created_at,
       coalesce(v.up, 0), coalesce(v.down, 0)
FROM answers a
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE value > 0) AS up, count(*) FILTER (WHERE value < 0) AS down
    FROM votes WHERE answer_id = a.id
) v ON true
WHERE (%(admin)s OR a.user_id = %(user)s) AND (%(before)s::bigint IS NULL OR a.id < %(before)s)
  AND (%(q)s = '' OR ((NOT a.private OR a.user_id = %(user)s) AND a.question ILIKE '%%' || %(q)s || '%%'))
ORDER BY a.id DESC LIMIT %(limit)s
"""


def answers_page(
    settings: Settings, *, user_id: str, admin: bool, q: str = "", before: int | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest answers the caller may see (all for admins, their own otherwise), `limit` before an id."""
    with raw_connection(settings) as conn:
        rows = conn.execute(
            _ANSWERS_LIST, {"admin": admin, "user": user_id, "before": before, "q": q, "limit": limit}
        ).fetchall()
    return [
        {
            "answer_id": int(i), "user": u, "surface": s, "question": qn, "model": m, "latency_ms": lat,
            "created_at": _iso(c), "up": int(up), "down": int(down),
        }
        for i, u, s, qn, m, lat, c, up, down in rows
    ]  # fmt: skip


def document(settings: Settings, document_id: int, *, asker: Asker) -> dict[str, Any] | None:
    """A document the asker may see with its passages in order, or None."""
    acl = visible_acl(asker)
    with raw_connection(settings) as conn:
        row = conn.execute(
            """SELECT id, uri, title, source_kind, source_root, updated_at FROM documents
               WHERE id = %s AND acl && %s::text[]""",
            (document_id, acl),
        ).fetchone()
        if row is None:
            return None
        chunks = conn.execute(
            "SELECT id, ord, heading, text FROM chunks WHERE document_id = %s ORDER BY ord", (document_id,)
        ).fetchall()
    return {
        "id": int(row[0]), "uri": row[1], "title": row[2], "kind": row[3], "root": row[4], "updated_at": _iso(row[5]),
        "chunks": [{"chunk_id": int(c[0]), "ord": c[1], "heading": c[2], "text": c[3]} for c in chunks],
    }  # fmt: skip


def documents_page(settings: Settings, *, asker: Asker, q: str = "", limit: int = 100) -> list[dict[str, Any]]:
    """Documents the asker may see whose title or uri contains `q`, newest first, with their passage counts."""
    with raw_connection(settings) as conn:
        rows = conn.execute(
            """SELECT d.id, d.uri, d.title, d.source_kind, d.updated_at,
                      (SELECT count(*) FROM chunks c WHERE c.document_id = d.id)
               FROM documents d
               WHERE d.acl && %(acl)s::text[]
                 AND (%(q)s = '' OR d.title ILIKE '%%' || %(q)s || '%%' OR d.uri ILIKE '%%' || %(q)s || '%%')
               ORDER BY d.updated_at DESC, d.id DESC LIMIT %(limit)s""",
            {"acl": visible_acl(asker), "q": q, "limit": limit},
        ).fetchall()
    return [
        {"id": int(i), "uri": u, "title": t, "kind": k, "updated_at": _iso(up), "chunks": int(n)}
        for i, u, t, k, up, n in rows
    ]


def delete_document(settings: Settings, document_id: int) -> str | None:
    """Remove a document and its passages (by cascade); its uri, or None when there was none."""
    with raw_connection(settings) as conn:
        row = conn.execute("DELETE FROM documents WHERE id = %s RETURNING uri", (document_id,)).fetchone()
    return str(row[0]) if row else None


_JOBS = """SELECT id, status, sources, acl, batches_total, batches_done, counts, errors, created_at, updated_at
           FROM ingest_jobs"""


def _job_json(row: tuple[Any, ...]) -> dict[str, Any]:
    id_, status, sources, acl, total, done, counts, errors, created, updated = row
    return {
        "id": int(id_), "status": status, "sources": sources, "acl": acl, "batches_total": total,
        "batches_done": done, "progress": round(done / total, 3) if total else 1.0, "counts": counts,
        "errors": errors, "created_at": _iso(created), "updated_at": _iso(updated),
    }  # fmt: skip


def job(settings: Settings, job_id: int) -> dict[str, Any] | None:
    """An ingest job as GET /api/v1/jobs/{id} returns it."""
    with raw_connection(settings) as conn:
        row = conn.execute(_JOBS + " WHERE id = %s", (job_id,)).fetchone()
    return _job_json(row) if row is not None else None


def recent_jobs(settings: Settings, limit: int = 10) -> list[dict[str, Any]]:
    with raw_connection(settings) as conn:
        rows = conn.execute(_JOBS + " ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
    return [_job_json(r) for r in rows]


def sync_state(settings: Settings) -> list[dict[str, Any]]:
    """Each Slack channel's incremental sync: where it stopped and when."""
    with raw_connection(settings) as conn:
        rows = conn.execute(
            "SELECT source, cursor, updated_at FROM sync_cursors ORDER BY updated_at DESC LIMIT 200"
        ).fetchall()
    return [{"source": s, "cursor": c, "updated_at": _iso(u)} for s, c, u in rows]
