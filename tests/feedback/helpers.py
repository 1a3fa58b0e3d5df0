"""Plain-SQL fixtures for feedback tests: documents with real embeddings, and recorded answers."""

from __future__ import annotations

from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from lore.config import Settings
from lore.db import raw_connection, refresh_page_vectors
from lore.embeddings import get_embedder


def rand_vec(seed: int) -> np.ndarray:
    """A unit vector for answers whose question embedding does not matter to the test (no embedder needed)."""
    v = np.random.default_rng(seed).normal(size=384).astype(np.float32)
    return v / np.linalg.norm(v)


def embed(settings: Settings, texts: list[str]) -> np.ndarray:
    return get_embedder(settings).embed(texts)


def add_doc(settings: Settings, *, uri: str, title: str, texts: list[str], acl: list[str] | None = None) -> list[int]:
    """A document and its chunks (one per text, real embeddings); returns the chunk ids in order."""
    acl = acl or ["public"]
    vectors = embed(settings, texts)
    with raw_connection(settings) as conn:
        doc_id = conn.execute(
            "INSERT INTO documents (uri, title, content_hash, acl) VALUES (%s, %s, %s, %s) RETURNING id",
            (uri, title, f"h-{uri}", acl),
        ).fetchone()[0]
        ids = []
        for order, (text, vec) in enumerate(zip(texts, vectors, strict=True)):
            row = conn.execute(
                "INSERT INTO chunks (document_id, ord, heading, text, text_hash, embedding, acl, uri, title) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (doc_id, order, title, text, f"{uri}#{order}", vec, acl, uri, title),
            ).fetchone()
            ids.append(int(row[0]))
        refresh_page_vectors(conn, [doc_id])  # as ingest writes it
    return ids


def add_answer(
    settings: Settings,
    *,
    question: str,
    answer: str = "an answer",
    chunk_ids: list[int] | None = None,
    channel_id: str | None = "C1",
    message_ts: str | None = None,
    thread_ts: str | None = None,
    private: bool = False,
    prompt: list[dict[str, Any]] | None = None,
    parent_id: int | None = None,
    embedding: np.ndarray | None = None,
    citations: list[dict[str, Any]] | None = None,
    model: str = "fake-model",
) -> int:
    """An `answers` row as the agent records it; returns its id."""
    vec = embedding if embedding is not None else embed(settings, [question])[0]
    prompt = prompt or [
        {"role": "system", "content": "You are Lore. Answer from the context."},
        {"role": "user", "content": f"<context>\nsome context\n</context>\n\nQuestion: {question}"},
    ]
    with raw_connection(settings) as conn:
        row = conn.execute(
            "INSERT INTO answers (team_id, channel_id, message_ts, thread_ts, user_id, surface, private, question,"
            " question_embedding, answer, model, prompt, citations, chunk_ids, parent_id)"
            " VALUES ('T1', %s, %s, %s, 'UASK', 'slack', %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                channel_id,
                message_ts,
                thread_ts or message_ts,
                private,
                question,
                vec,
                answer,
                model,
                Jsonb(prompt),
                Jsonb(citations or []),
                chunk_ids or [],
                parent_id,
            ),
        ).fetchone()
    return int(row[0])


def votes(settings: Settings) -> dict[tuple[int, str], int]:
    with raw_connection(settings) as conn:
        rows = conn.execute("SELECT answer_id, user_id, value FROM votes").fetchall()
    return {(int(a), u): int(v) for a, u, v in rows}
