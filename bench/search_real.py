"""Search on a real knowledge base with real questions (not in CI): latency of each mode, HNSW recall@10.

bench/search.py measures 100,000 synthetic chunks; its words and vectors are not a real corpus's (its full text
matches a few hundred passages per question, a question to the Python docs matched thousands). This takes a
knowledge base made by `lore ingest` (e.g. the whole Python 3.11 docs) and the questions of one or more eval
files, and reports p50/p90/max latency of each search mode (k=5, as answers use, no feedback), and the recall@10
of the bare HNSW query and of Lore's vector mode against exact search over every chunk, for a few
`hnsw.ef_search`.

    LORE_HOME=/tmp/pydocs .venv/bin/lore ingest /usr/share/doc/python3.11/html
    LORE_HOME=/tmp/pydocs .venv/bin/python bench/search_real.py bench/eval_python_docs.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import psycopg
from turns import take_turns

from lore.config import Settings
from lore.db import database_url, register_vectors
from lore.search import candidate_count, embed_query, search_scored

K = 10


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("eval_files", type=Path, nargs="+", help="JSONL files with a `query` per line")
    args = parser.parse_args()
    settings = Settings()
    questions = [
        json.loads(line)["query"] for path in args.eval_files for line in path.read_text().splitlines() if line.strip()
    ]
    queries = np.stack([embed_query(settings, q) for q in questions])
    print("| mode | p50 ms | p90 ms | max ms |\n|---|---:|---:|---:|")
    for mode in ("vector", "fulltext", "hybrid"):
        for question, q in list(zip(questions, queries, strict=True))[:5]:  # warm the connection and caches
            search_scored(settings, question, k=5, mode=mode, query_embedding=q, use_feedback=False)
        took = []
        for question, q in zip(questions, queries, strict=True):
            started = time.perf_counter()
            search_scored(settings, question, k=5, mode=mode, query_embedding=q, use_feedback=False)
            took.append((time.perf_counter() - started) * 1000)
        took.sort()
        print(f"| {mode} | {statistics.median(took):.2f} | {took[int(len(took) * 0.9)]:.2f} | {took[-1]:.2f} |")
    print()
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
    candidates = candidate_count(K, "vector")
    print(f"| Lore vector mode ({candidates} candidates, near-duplicates collapsed) | 40 | {np.mean(found):.3f} |")
    _vector_ratios(settings, questions, queries, rounds=5)


def _vector_ratios(settings: Settings, questions: list[str], queries: np.ndarray, *, rounds: int) -> None:
    """Lore's vector mode (k=10, with and without the feedback memory) against the bare HNSW query, interleaved as
    in bench/search.py (turns.py)."""
    with psycopg.connect(database_url(settings), autocommit=True) as conn:
        register_vectors(conn)
        voted = conn.execute("SELECT count(*) FROM feedback_answers").fetchone()[0]

        def bare(i: int) -> None:
            conn.execute("SELECT id FROM chunks ORDER BY embedding <=> %s LIMIT 10", (queries[i],), prepare=True)

        def lore(i: int, feedback: bool) -> None:
            search_scored(settings, questions[i], k=K, mode="vector", query_embedding=queries[i], use_feedback=feedback)

        contenders = [("anchor", bare), ("feedback", lambda i: lore(i, True)), ("plain", lambda i: lore(i, False))]
        n = len(questions)
        ratios = []
        for _ in range(rounds + 1):  # the first round warms up
            took = take_turns(contenders, n)
            anchor, with_fb, without = (statistics.median(took[name]) for name, _ in contenders)
            ratios.append((anchor * 1000, with_fb / anchor, without / anchor))
    print(f"\nVector mode against the bare query, {voted} past questions in the feedback memory, {rounds} rounds:")
    for anchor_ms, with_fb, without in ratios[1:]:
        print(f"  anchor {anchor_ms:.2f} ms; Lore vector {with_fb:.2f}x, without feedback {without:.2f}x")
    print(f"  median: {statistics.median(r[1] for r in ratios[1:]):.2f}x with feedback, "
          f"{statistics.median(r[2] for r in ratios[1:]):.2f}x without (goal <= 1.5)")  # fmt: skip


if __name__ == "__main__":
    main()
