"""Pseudo-relevance feedback for the query vector: does moving it toward its own first hits help everyday wordings?

Vector PRF (Rocchio on embeddings): the query's vector plus beta times the mean vector of the first K chunks of a
first hybrid search, normalised, drives a second hybrid search (the full-text side keeps the question's words). The
experiment asks, set by set, what that does to MRR@10 by page, scored as `lore eval retrieval` scores (the first 40
hits, feedback memory off).

    LORE_HOME=KB .venv/bin/python bench/prf.py --grid 3:0.3,3:0.5,5:0.5 SET...

Each configuration is K:beta; the first column (beta 0) is today's hybrid search, searched in the same run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", default="3:0.3,3:0.5,5:0.5,5:1.0")
    parser.add_argument("sets", nargs="+")
    args = parser.parse_args()
    grid = [(int(k), float(b)) for k, b in (item.split(":") for item in args.grid.split(","))]

    from lore.config import get_settings
    from lore.db import raw_connection, register_vectors
    from lore.embeddings import get_embedder
    from lore.eval import CHUNKS_FETCHED, load_eval_set, ranked_documents, score_ranking
    from lore.search import hybrid_search

    settings = get_settings()
    embedder = get_embedder(settings)
    print("set | n | today | " + " | ".join(f"K={k} beta={b:g}" for k, b in grid))
    totals = np.zeros(len(grid) + 1)
    with raw_connection(settings) as conn:
        register_vectors(conn)
        for name in args.sets:
            rows = load_eval_set(BENCH / f"{name}.jsonl")
            vectors = embedder.embed([row.query for row in rows])
            sums = np.zeros(len(grid) + 1)
            for row, vector in zip(rows, vectors, strict=True):
                hits = hybrid_search(settings, row.query, k=CHUNKS_FETCHED, query_embedding=vector, use_feedback=False)
                sums[0] += score_ranking(ranked_documents([h.uri for h in hits]), row.relevant, 5)[1]
                ids = [h.chunk_id for h in hits[: max(k for k, _ in grid)]]
                found = dict(conn.execute("SELECT id, embedding FROM chunks WHERE id = ANY(%s)", (ids,)).fetchall())
                for i, (k, beta) in enumerate(grid, start=1):
                    centroid = np.mean([found[c] for c in ids[:k]], axis=0)
                    moved = vector + beta * centroid
                    moved = (moved / np.linalg.norm(moved)).astype(np.float32)
                    again = hybrid_search(
                        settings, row.query, k=CHUNKS_FETCHED, query_embedding=moved, use_feedback=False
                    )
                    sums[i] += score_ranking(ranked_documents([h.uri for h in again]), row.relevant, 5)[1]
            means = sums / len(rows)
            totals += means
            print(f"{name} | {len(rows)} | " + " | ".join(f"{m:.3f}" for m in means), flush=True)
    print(f"mean of {len(args.sets)} | | " + " | ".join(f"{m:.3f}" for m in totals / len(args.sets)))


if __name__ == "__main__":
    main()
