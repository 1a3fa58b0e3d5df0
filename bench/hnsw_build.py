"""What other HNSW index definitions would buy the write path, and what they cost in recall (not in CI).

The ingest goals (#4: first bulk load 10x PGVector, incremental batch 3x) are bounded by pgvector's HNSW build
and insertion. This measures, on the search benchmark's clustered vectors (run `bench/search.py --home DIR`
first; this reuses DIR), the build time of candidate index definitions on a 20,000-row sample (the ingest
benchmark's size), with 0 and 1 parallel maintenance workers and `maintenance_work_mem` = 1 GB, and then the
recall@10 against exact search of the cheaper definitions on all 100,000 rows, where a weaker graph shows.

    .venv/bin/python bench/hnsw_build.py --home /tmp/hb/bench100k
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import psycopg

from lore.config import Settings
from lore.db import database_url, register_vectors

DEFINITIONS = {
    "vector, m=16, ef_construction=64 (Lore's)": "(embedding vector_cosine_ops)",
    "halfvec expression, m=16, ef_construction=64": "((embedding::halfvec(384)) halfvec_cosine_ops)",
    "sign bits (binary_quantize), hamming": "((binary_quantize(embedding)::bit(384)) bit_hamming_ops)",
    "vector, m=16, ef_construction=32": "(embedding vector_cosine_ops) WITH (ef_construction = 32)",
}
# Compared for recall on every row: the same operator, so the same search statement, only a weaker graph.
RECALL = ("vector, m=16, ef_construction=64 (Lore's)", "vector, m=16, ef_construction=32")


def _queries(vectors: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Queries near the data: a stored vector plus noise of its own size (the benchmark's queries sit as near
    their cluster centres)."""
    picked = vectors[rng.choice(len(vectors), n, replace=False)]
    queries = picked + rng.standard_normal(picked.shape).astype(np.float32) / np.sqrt(picked.shape[1])
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True, help="the LORE_HOME of a bench/search.py run")
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    settings = Settings().model_copy(update={"lore_home": args.home, "database_url": None})
    rng = np.random.default_rng(5)
    with psycopg.connect(database_url(settings), autocommit=True) as conn:
        register_vectors(conn)
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("DROP TABLE IF EXISTS bench_hnsw")
        sample = "SELECT id, embedding FROM chunks ORDER BY random() LIMIT %s"
        conn.execute(f"CREATE TABLE bench_hnsw AS {sample}" % int(args.sample))
        print(f"\nBuild time, {args.sample:,} rows:\n")
        print("| index | no parallel worker | 1 parallel worker |\n|---|---:|---:|")
        for name, definition in DEFINITIONS.items():
            times = []
            for workers in (0, 1):
                conn.execute(f"SET max_parallel_maintenance_workers = {workers}")
                started = time.perf_counter()
                conn.execute(f"CREATE INDEX bench_hnsw_i ON bench_hnsw USING hnsw {definition}")
                times.append(time.perf_counter() - started)
                conn.execute("DROP INDEX bench_hnsw_i")
            print(f"| {name} | {times[0]:.2f} s | {times[1]:.2f} s |", flush=True)

        conn.execute("DROP TABLE bench_hnsw")
        conn.execute("CREATE TABLE bench_hnsw AS SELECT id, embedding FROM chunks")
        rows = conn.execute("SELECT id, embedding FROM bench_hnsw ORDER BY id").fetchall()
        ids = np.array([r[0] for r in rows])
        vectors = np.stack([np.asarray(r[1], dtype=np.float32) for r in rows])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        queries = _queries(vectors, args.queries, rng)
        truth = [set(ids[np.argsort(-(vectors @ q))[:10]].tolist()) for q in queries]
        conn.execute("SET max_parallel_maintenance_workers = 1")
        print(f"\nRecall@10 against exact search, {len(ids):,} rows, {args.queries} queries:\n")
        print("| index | build | ef_search | recall@10 | p50 ms |\n|---|---:|---:|---:|---:|")
        for name in RECALL:
            conn.execute("DROP INDEX IF EXISTS bench_hnsw_i")
            started = time.perf_counter()
            conn.execute(f"CREATE INDEX bench_hnsw_i ON bench_hnsw USING hnsw {DEFINITIONS[name]}")
            build = time.perf_counter() - started
            for ef in (40, 80):
                conn.execute(f"SET hnsw.ef_search = {ef}")
                found, latency = [], []
                for q, expected in zip(queries, truth, strict=True):
                    started = time.perf_counter()
                    got = conn.execute(
                        "SELECT id FROM bench_hnsw ORDER BY embedding <=> %s LIMIT 10", (q,), prepare=True
                    ).fetchall()
                    latency.append(time.perf_counter() - started)
                    found.append(len(expected & {r[0] for r in got}) / 10)
                print(f"| {name} | {build:.1f} s | {ef} | {np.mean(found):.3f} | "
                      f"{statistics.median(latency) * 1000:.2f} |", flush=True)  # fmt: skip
        conn.execute("DROP TABLE bench_hnsw")


if __name__ == "__main__":
    main()
