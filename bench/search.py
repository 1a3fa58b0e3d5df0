"""Search latency and HNSW recall on 100,000 clustered 384-d chunks, anchored to a bare pgvector query.

Data: vectors drawn around 500 cluster centres (cosine to the centre ~0.7, like sentence embeddings of one
topic; uniformly random vectors have no neighbourhood structure and make any HNSW look broken), words drawn
from a per-cluster vocabulary so full text has something to match. 1 % of the documents belong to one
private channel: the selective-filter case. Queries are fresh points around random centres.

Measured in the same run, on the same table:
- anchor: bare `SELECT id FROM chunks ORDER BY embedding <=> q LIMIT 10` (pgvector defaults, ef_search 40);
- its recall@10 against exact search (numpy) for several hnsw.ef_search values;
- Lore's vector mode (`lore.search.search_scored`: ACL filter, feedback memory, collapse) and hybrid mode;
- the selective ACL filter: Lore's vector mode (iterative index scan) vs the bare query with the same filter
  and no iterative scan.

    .venv/bin/python bench/search.py [--rows 100000] [--queries 200] [--rounds 20] [--home DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
from turns import take_turns

from lore.config import Settings
from lore.db import database_url, dispose_engines, refresh_page_vectors, register_vectors, stop_embedded
from lore.search import search_scored
from lore.types import Asker

DIM = 384
CLUSTERS = 500
CHUNKS_PER_DOC = 20
PRIVATE = "C0PRIVATE"
WORDS_PER_CLUSTER = 30
K = 10


class ChannelOnly(Asker):
    """An asker who sees one channel and nothing public: the most selective filter there is."""

    def visible_acl(self) -> list[str]:
        return [PRIVATE]


def make_data(rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    centres = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, CLUSTERS, rows)
    noise = rng.standard_normal((rows, DIM)).astype(np.float32) / np.sqrt(DIM)
    vectors = centres[labels] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vocab = [f"w{c}x{i}" for c in range(CLUSTERS) for i in range(WORDS_PER_CLUSTER)]
    common = [f"common{i}" for i in range(200)]
    texts = []
    for label in labels:
        own = rng.choice(WORDS_PER_CLUSTER, 40)
        words = [vocab[label * WORDS_PER_CLUSTER + i] for i in own] + list(rng.choice(common, 20))
        texts.append(" ".join(words))
    return centres, labels, vectors, texts


def load(url: str, vectors: np.ndarray, texts: list[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """COPY documents and chunks in, then build the HNSW index once (faster than growing it row by row)."""
    docs = (len(texts) + CHUNKS_PER_DOC - 1) // CHUNKS_PER_DOC
    private_docs = set(rng.choice(docs, max(1, docs // 100), replace=False).tolist())
    acl = np.array([PRIVATE if (i // CHUNKS_PER_DOC) in private_docs else "public" for i in range(len(texts))])
    with psycopg.connect(url, autocommit=True) as conn:
        register_vectors(conn)
        conn.execute("DROP INDEX IF EXISTS ix_chunks_embedding_hnsw")
        with conn.cursor().copy("COPY documents (id, uri, title, content_hash, acl) FROM STDIN") as copy:
            for d in range(docs):
                doc_acl = [PRIVATE] if d in private_docs else ["public"]
                copy.write_row((d + 1, f"bench://doc/{d}", f"Document {d}", str(d), doc_acl))
        columns = "document_id, ord, heading, text, text_hash, embedding, acl, uri, title"
        with conn.cursor().copy(f"COPY chunks ({columns}) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "int4", "text", "text", "text", "vector", "text[]", "text", "text"])
            for i, text in enumerate(texts):
                digest = hashlib.sha256(text.encode()).hexdigest()
                d = i // CHUNKS_PER_DOC
                row = (
                    d + 1,
                    i % CHUNKS_PER_DOC,
                    "",
                    text,
                    digest,
                    vectors[i],
                    [acl[i]],
                    f"bench://doc/{d}",
                    f"Document {d}",
                )
                copy.write_row(row)
        conn.execute("SET maintenance_work_mem = '512MB'")
        started = time.perf_counter()
        conn.execute(
            "CREATE INDEX ix_chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops)"
            " WITH (m = 16, ef_construction = 64)"
        )
        print(f"HNSW index built in {time.perf_counter() - started:.0f} s")
        refresh_page_vectors(conn)  # as ingest writes them: hybrid search weighs each passage's page
        conn.execute("VACUUM ANALYZE chunks")
        conn.execute("VACUUM ANALYZE documents")
        ids = conn.execute("SELECT id FROM chunks ORDER BY id").fetchall()
    # Identity ids follow COPY order, so ids[i] is the chunk of vectors[i] and acl[i].
    return np.array([i for (i,) in ids]), acl


def add_feedback(
    url: str, centres: np.ndarray, labels: np.ndarray, ids: np.ndarray, rng: np.random.Generator, answers: int
) -> None:
    """Past answers with votes, as a deployment accumulates them: each answered a question near one cluster
    centre from 5 of that cluster's chunks and got 1-3 votes. Their evidence is computed as votes would."""
    from lore.feedback_memory import refresh_all

    qlabels = rng.integers(0, CLUSTERS, answers)
    qvecs = centres[qlabels] + rng.standard_normal((answers, DIM)).astype(np.float32) / np.sqrt(DIM)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    by_cluster: dict[int, np.ndarray] = {}
    with psycopg.connect(url) as conn:
        register_vectors(conn)
        rows = []
        for n in range(answers):
            label = int(qlabels[n])
            if label not in by_cluster:
                by_cluster[label] = ids[labels == label]
            context = [int(i) for i in rng.choice(by_cluster[label], min(5, len(by_cluster[label])), replace=False)]
            rows.append((f"past question {n}", qvecs[n], context))
        answer_ids = []
        for question, qvec, context in rows:
            answer_ids.append(
                conn.execute(
                    "INSERT INTO answers (question, answer, model, question_embedding, chunk_ids) "
                    "VALUES (%s, 'an answer', 'bench', %s, %s) RETURNING id",
                    (question, qvec, context),
                ).fetchone()[0]
            )
        with conn.cursor().copy("COPY votes (answer_id, user_id, value) FROM STDIN") as copy:
            for answer_id in answer_ids:
                for voter in range(int(rng.integers(1, 4))):
                    copy.write_row((answer_id, f"U{voter}", int(rng.choice([1, 1, -1]))))
        refresh_all(conn)
        held = conn.execute("SELECT count(*) FROM feedback_answers").fetchone()[0]
    print(f"feedback: {answers} voted answers, {held} with evidence")


def exact(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, mask: np.ndarray | None = None) -> list[set[int]]:
    sims = queries @ vectors.T
    if mask is not None:
        sims[:, ~mask] = -np.inf
    top = np.argpartition(-sims, K, axis=1)[:, :K]
    return [set(ids[row].tolist()) for row in top]


def timed(fn: Callable[[int], list[int]], n: int) -> tuple[list[float], list[list[int]]]:
    for i in range(min(20, n)):  # warm caches and the pool
        fn(i)
    times, results = [], []
    for i in range(n):
        started = time.perf_counter()
        results.append(fn(i))
        times.append((time.perf_counter() - started) * 1000)
    return times, results


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def recall(results: list[list[int]], truth: list[set[int]]) -> float:
    return statistics.mean(len(set(r[:K]) & t) / K for r, t in zip(results, truth, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--home", type=Path, help="keep the database here and reuse it on the next run")
    parser.add_argument("--answers", type=int, default=5000, help="past voted answers (the feedback memory)")
    parser.add_argument("--rounds", type=int, default=20, help="paired anchor / vector-mode rounds for the ratio")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    home = args.home or Path(tempfile.mkdtemp(prefix="lore-bench-search-"))
    reuse = args.home is not None and (home / "pgdata").exists()
    settings = Settings().model_copy(update={"lore_home": home, "database_url": None})
    from lore.migrations import upgrade_database

    upgrade_database(settings)
    url = database_url(settings)
    try:
        run(settings, url, args.rows, args.queries, rng, reuse=reuse, answers=args.answers, rounds=args.rounds)
    finally:
        dispose_engines()
        if args.home is None:
            stop_embedded(settings)


def run(
    settings: Settings,
    url: str,
    rows: int,
    n: int,
    rng: np.random.Generator,
    *,
    reuse: bool,
    answers: int,
    rounds: int,
) -> None:
    centres, labels, vectors, texts = make_data(rows, rng)
    if reuse:
        with psycopg.connect(url) as conn:
            ids = np.array([i for (i,) in conn.execute("SELECT id FROM chunks ORDER BY id").fetchall()])
            acl = np.array([a[0] for (a,) in conn.execute("SELECT acl FROM chunks ORDER BY id").fetchall()])
        assert len(ids) == rows, "the kept database holds another --rows"
    else:
        ids, acl = load(url, vectors, texts, rng)
        add_feedback(url, centres, labels, ids, np.random.default_rng(11), answers)
    qlabels = rng.integers(0, CLUSTERS, n)
    queries = centres[qlabels] + rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    qtexts = [" ".join(f"w{c}x{i}" for i in rng.choice(WORDS_PER_CLUSTER, 2, replace=False)) for c in qlabels]
    public = acl == "public"
    truth_all = exact(vectors, ids, queries)
    truth_public = exact(vectors, ids, queries, public)
    truth_private = exact(vectors, ids, queries, ~public)

    lines: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        register_vectors(conn)

        def bare(i: int, where: str = "", acl_value: list[str] | None = None) -> list[int]:
            sql = f"SELECT id FROM chunks {where} ORDER BY embedding <=> %(q)s LIMIT 10"
            params = {"q": queries[i], "acl": acl_value}
            return [r for (r,) in conn.execute(sql, params, prepare=True).fetchall()]

        for ef in (20, 40, 80, 160):
            conn.execute(f"SET hnsw.ef_search = {ef}")
            times, results = timed(bare, n)
            label = "anchor: bare ORDER BY embedding <=> q LIMIT 10" + (" (default)" if ef == 40 else "")
            lines.append(f"| {label}, ef_search={ef} | {p(times, 50):.2f} | {p(times, 99):.2f} | "
                         f"{recall(results, truth_all):.3f} |")  # fmt: skip
            if ef == 40:
                anchor_p50 = p(times, 50)
        conn.execute("SET hnsw.ef_search = 40")
        where = "WHERE acl && %(acl)s::text[]"
        times, results = timed(lambda i: bare(i, where, [PRIVATE]), n)
        lines.append(f"| bare + selective ACL filter (1 % of rows), no iterative scan | {p(times, 50):.2f} | "
                     f"{p(times, 99):.2f} | {recall(results, truth_private):.3f} |")  # fmt: skip

    def lore(i: int, *, mode: str, asker: Asker | None = None, feedback: bool = True) -> list[int]:
        hits = search_scored(
            settings, qtexts[i], asker=asker, k=K, mode=mode, query_embedding=queries[i], use_feedback=feedback
        )
        return [h.hit.chunk_id for h in hits]

    times, results = timed(lambda i: lore(i, mode="vector"), n)
    vector_p50 = p(times, 50)
    lines.append(f"| Lore vector mode (ACL filter, feedback memory, collapse) | {vector_p50:.2f} | "
                 f"{p(times, 99):.2f} | {recall(results, truth_public):.3f} |")  # fmt: skip
    times, results = timed(lambda i: lore(i, mode="vector", feedback=False), n)
    lines.append(f"| Lore vector mode without the feedback memory (`use_feedback=False`) | {p(times, 50):.2f} | "
                 f"{p(times, 99):.2f} | {recall(results, truth_public):.3f} |")  # fmt: skip
    times, results = timed(lambda i: lore(i, mode="vector", asker=ChannelOnly()), n)
    lines.append(f"| Lore vector mode, selective ACL filter (1 % of rows), iterative scan | {p(times, 50):.2f} | "
                 f"{p(times, 99):.2f} | {recall(results, truth_private):.3f} |")  # fmt: skip
    times, _ = timed(lambda i: lore(i, mode="hybrid"), n)
    hybrid_p50 = p(times, 50)
    lines.append(f"| Lore hybrid mode (HNSW + full text, score fusion, feedback memory) | {hybrid_p50:.2f} | "
                 f"{p(times, 99):.2f} | - |")  # fmt: skip
    times, _ = timed(lambda i: lore(i, mode="fulltext"), n)
    lines.append(f"| Lore full-text mode | {p(times, 50):.2f} | {p(times, 99):.2f} | - |")

    print(f"\n{rows} chunks, {n} queries, k={K}\n")
    print("| query | p50 ms | p99 ms | recall@10 vs exact |")
    print("|---|---:|---:|---:|")
    print("\n".join(lines))
    print(f"\nLore vector p50 / anchor p50 = {vector_p50 / anchor_p50:.2f} (goal <= 1.5); "
          f"hybrid p50 = {hybrid_p50:.2f} ms (goal <= 10)")  # fmt: skip

    # Paired rounds: the anchor and Lore's vector mode back to back, several times, so that a drift of the
    # shared machine between two measurements minutes apart does not decide the ratio.
    print(f"\nPaired rounds (anchor, then Lore vector mode with and without feedback; {n} queries each):")
    pairs = []
    with psycopg.connect(url, autocommit=True) as conn:
        register_vectors(conn)

        def anchor(i: int) -> list[int]:
            sql = "SELECT id FROM chunks ORDER BY embedding <=> %(q)s LIMIT 10"
            return [r for (r,) in conn.execute(sql, {"q": queries[i]}, prepare=True).fetchall()]

        for r in range(rounds):
            a = p(timed(anchor, n)[0], 50)
            with_fb = p(timed(lambda i: lore(i, mode="vector"), n)[0], 50)
            without = p(timed(lambda i: lore(i, mode="vector", feedback=False), n)[0], 50)
            pairs.append((with_fb / a, without / a))
            print(f"  round {r + 1}: anchor {a:.2f} ms; Lore vector {with_fb:.2f} ms ({with_fb / a:.2f}x), "
                  f"without feedback {without:.2f} ms ({without / a:.2f}x)")  # fmt: skip
        print(f"Median ratio over {rounds} rounds: Lore vector {statistics.median(x for x, _ in pairs):.2f}x, "
              f"without feedback {statistics.median(y for _, y in pairs):.2f}x (goal <= 1.5)")  # fmt: skip

        # Interleaved rounds: the anchor, Lore with feedback and Lore without take turns query by query (turns.py),
        # so that a drift of the machine hits all three alike (the block rounds above compare loops a few hundred ms
        # apart, and the anchor alone moves 0.7-1.0 ms between runs).
        print(f"\nInterleaved rounds (anchor, Lore vector, Lore vector without feedback, in turn; {n} each):")
        interleaved = []
        contenders: list[tuple[str, Callable[[int], object]]] = [
            ("anchor", anchor),
            ("feedback", lambda i: lore(i, mode="vector")),
            ("plain", lambda i: lore(i, mode="vector", feedback=False)),
        ]
        for r in range(rounds):
            took = take_turns(contenders, n)
            a, with_fb, without = (p(took[name], 50) * 1000 for name, _ in contenders)
            interleaved.append((with_fb / a, without / a))
            print(f"  round {r + 1}: anchor {a:.2f} ms; Lore vector {with_fb:.2f} ms ({with_fb / a:.2f}x), "
                  f"without feedback {without:.2f} ms ({without / a:.2f}x)")  # fmt: skip
    print(f"Median ratio over {rounds} interleaved rounds: Lore vector "
          f"{statistics.median(x for x, _ in interleaved):.2f}x, without feedback "
          f"{statistics.median(y for _, y in interleaved):.2f}x (goal <= 1.5)")  # fmt: skip


if __name__ == "__main__":
    main()
