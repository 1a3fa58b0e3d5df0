"""A selective permission filter keeps recall: the asker's few visible chunks are found even when thousands of
closer chunks belong to a channel they cannot see (pgvector's iterative index scan, or an exact plan)."""

from __future__ import annotations

import hashlib

import numpy as np

from lore.config import Settings
from lore.db import raw_connection
from lore.search import hybrid_search
from lore.types import Asker

DIM = 384


def _unit(rng: np.random.Generator, centre: np.ndarray, spread: float, n: int) -> np.ndarray:
    vectors = centre + spread * rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_visible_chunks_are_found_behind_thousands_of_invisible_closer_ones(db: Settings) -> None:
    rng = np.random.default_rng(3)
    query = rng.standard_normal(DIM).astype(np.float32)
    query /= np.linalg.norm(query)
    # Another team's private channel, all very close to the question, and as many public chunks further away:
    # half the rows pass the filter, so the planner scans the HNSW index, whose first candidates are all hidden.
    hidden = _unit(rng, query, 0.3, 2000)
    visible = _unit(rng, query, 1.5, 2000)
    rows = [(1, i, f"hidden {i}", v, ["C0HIDDEN"]) for i, v in enumerate(hidden)]
    rows += [(2, i, f"visible {i}", v, ["public"]) for i, v in enumerate(visible)]
    with raw_connection(db) as conn:
        conn.execute(
            "INSERT INTO documents (id, uri, title, content_hash, acl) VALUES"
            " (1, 'test://hidden', 'hidden', 'h', ARRAY['C0HIDDEN']),"
            " (2, 'test://visible', 'visible', 'v', ARRAY['public'])"
        )
        with conn.cursor().copy(
            "COPY chunks (document_id, ord, text, text_hash, embedding, acl, uri, title)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int4", "text", "text", "vector", "text[]", "text", "text"])
            for doc, ord_, text, vector, acl in rows:
                name = "hidden" if doc == 1 else "visible"
                digest = hashlib.sha256(text.encode()).hexdigest()
                copy.write_row((doc, ord_, text, digest, vector, acl, f"test://{name}", name))
        conn.execute("ANALYZE chunks")

    hits = hybrid_search(db, "anything", asker=Asker(channel_id="C0OTHER"), k=5, mode="vector", query_embedding=query)
    nearest_visible = np.argsort(-(visible @ query))[:5]
    assert len(hits) == 5
    found = {int(h.text.split()[1]) for h in hits if h.text.startswith("visible")}
    assert len(found & set(nearest_visible.tolist())) >= 4  # approximate search: recall, not exactness
    members = hybrid_search(
        db, "anything", asker=Asker(channel_id="C0HIDDEN"), k=5, mode="vector", query_embedding=query
    )
    assert all(h.text.startswith("hidden") for h in members)
