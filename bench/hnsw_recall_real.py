"""HNSW recall@10 for real questions on a real knowledge base (not in CI).

The search benchmark's recall figures come from synthetic clustered vectors, and how far its queries sit from
the data changes them (docs/benchmarks.md, HNSW index definitions). This takes a knowledge base made by
`lore ingest` (e.g. the Python 3.11 docs) and the questions of an eval file, and compares the bare HNSW query
and Lore's vector mode (without feedback) with exact search over every chunk, for a few `hnsw.ef_search`.

    LORE_HOME=/tmp/pydocs .venv/bin/lore ingest /usr/share/doc/python3.11/html
    LORE_HOME=/tmp/pydocs .venv/bin/python bench/hnsw_recall_real.py bench/eval_python_docs.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import psycopg

from lore.config import Settings
from lore.db import database_url, register_vectors
from lore.search import embed_query, search_scored

K = 10


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("eval_file", type=Path, help="JSONL with a `query` per line")
    args = parser.parse_args()
    settings = Settings()
    questions = [json.loads(line)["query"] for line in args.eval_file.read_text().splitlines() if line.strip()]
    queries = np.stack([embed_query(settings, q) for q in questions])
    with psycopg.connect(database_url(settings), autocommit=True) as conn:
        register_vectors(conn)
        rows = conn.execute("SELECT id, embedding FROM chunks WHERE acl && ARRAY['public']").fetchall()
        ids = np.array([r[0] for r in rows])
        vectors = np.stack([np.asarray(r[1], dtype=np.float32) for r in rows])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        sims = queries @ vectors.T
        truth = [set(ids[np.argsort(-s)[:K]].tolist()) for s in sims]
        top = np.sort(sims, axis=1)[:, ::-1]
        print(f"{len(ids):,} public chunks, {len(questions)} questions")
        print(f"cosine of the nearest chunk: median {statistics.median(top[:, 0]):.3f}; "
              f"of the 10th: median {statistics.median(top[:, K - 1]):.3f}\n")  # fmt: skip
        print("| search | ef_search | recall@10 vs exact |\n|---|---:|---:|")
        for ef in (40, 80, 160):
            conn.execute(f"SET hnsw.ef_search = {ef}")
            found = []
            for q, expected in zip(queries, truth, strict=True):
                got = conn.execute(
                    "SELECT id FROM chunks WHERE acl && ARRAY['public'] ORDER BY embedding <=> %s LIMIT 10", (q,)
                ).fetchall()
                found.append(len(expected & {r[0] for r in got}) / K)
            print(f"| bare HNSW query | {ef} | {np.mean(found):.3f} |")
    found = []
    for question, q, expected in zip(questions, queries, truth, strict=True):
        hits = search_scored(settings, question, k=K, mode="vector", query_embedding=q, use_feedback=False)
        found.append(len(expected & {h.hit.chunk_id for h in hits}) / K)
    print(f"| Lore vector mode (20 candidates, near-duplicates collapsed) | 40 | {np.mean(found):.3f} |")


if __name__ == "__main__":
    main()
