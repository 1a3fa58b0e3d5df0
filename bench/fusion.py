"""Hybrid fusion: choose its few parameters on the pooled question sets, report on a blind one.

Each question's candidate lists are read once from the knowledge base (the vector scan and the full-text scan as
`lore.search` runs them, `candidate_count` deep, with each candidate's cosine similarity to the question, its page
vector's, its full-text rank (ts_rank_cd) and which of the question's lexemes it uses; plus the lexemes' document
frequencies from PostgreSQL's statistics). The fusion is then replayed in Python for every setting of a small grid
(`lore.search.FusionParams`: the passage's own score, its cosine plus the full-text weight times its rarity-weighted
share of the question's words, `coverage_weights`, mixed with its page vector's cosine, as `build_query` fuses),
scored by document as `lore eval retrieval` scores (recall@5, MRR@10). The grid keeps the full-text weight at most
STUFFING_RATIO, so that a page stuffed with a question's words gains no more than it could before the page term
(tests/search/test_fusion.py). Session 14's fusion (the same, with the saturated ts_rank_cd, r / (r + 1), of the
full-text list's candidates in place of the share of words, and a page share of 0.25) is replayed alongside.

Choosing: the setting with the best mean MRR@10 over the POOL sets (every question set under bench/ but the blind
one; a mean over sets, so a small identifier set counts as much as a large everyday one) among the settings that
keep hybrid at or above the better single mode (vector, full text) on every POOL set. Reporting: the blind sets
(fresh20 and fresh21 since session 17, written then from the pages alone; questions and everyday rephrasings),
which choose nothing. fresh10 to fresh19 reported earlier fusions and are in the pool since.
Reciprocal rank fusion as shipped until session 10 (full-text weight 0.7 for a question naming an identifier, 0.1
otherwise) is replayed too.

    LORE_HOME=/work/kb/pydocs .venv/bin/python bench/fusion.py [--cache FILE] [--refresh]

Then check the chosen setting end to end, with the search code itself: `lore eval retrieval FILE --mode all`.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from lore.config import Settings
from lore.eval import CHUNKS_FETCHED, load_eval_set, ranked_documents, score_ranking
from lore.search import (
    _FULLTEXT_CTE,
    FusionParams,
    _connection,
    _frequent_lexemes,
    candidate_count,
    coverage_weights,
    lexeme_shares,
    query_profile,
)

BENCH = Path(__file__).resolve().parent
# fresh10 and fresh11 reported the page term in session 13, fresh12 and fresh13 checked it again in session 14,
# fresh14 to fresh17 reported session 15's share of words, fresh18 to fresh21 checked it in sessions 16 and 17; all
# twelve are in the pool since, and so are fresh22 to fresh27 (sessions 18 to 20). fresh28 and fresh29 (written in
# session 20 from the pages alone) reported once at its end; they join the pool when newer blind sets replace them.
BLIND = ["fresh28_questions.jsonl", "fresh28_rephrasings.jsonl", "fresh29_questions.jsonl", "fresh29_rephrasings.jsonl"]
# Not retrieval sets: the extraction benchmark's questions.
NOT_RETRIEVAL = ("extract_",)
K = 5
RRF_BEFORE = {"identifier": 0.7, "natural": 0.1}  # reciprocal rank fusion's weights until session 10
RRF_K = 60

_VEC_SQL = """SELECT id, document_id, uri, 1 - (embedding <=> %(qvec)s) FROM chunks WHERE acl && %(acl)s::text[]
ORDER BY embedding <=> %(qvec)s LIMIT %(n)s"""
_FTS_SQL = f"""WITH {_FULLTEXT_CTE}
SELECT f.id, c.document_id, c.uri, f.r, 1 - (c.embedding <=> %(qvec)s) FROM fts f JOIN chunks c USING (id)
ORDER BY f.rank"""
# Which of the question's lexemes each candidate uses (what `lore.search._COVERAGE` tests, one lexeme at a time).
_MATCHED_SQL = """SELECT c.id, ARRAY(SELECT u.lexeme FROM unnest(c.tsv) u WHERE u.lexeme = ANY(%(lexemes)s::text[]))
FROM chunks c WHERE c.id = ANY(%(ids)s)"""
# Each candidate's page similarity (None: a one-passage document, which has no page vector).
_PAGES_SQL = """SELECT c.id, 1 - (d.embedding <=> %(qvec)s) FROM chunks c JOIN documents d ON d.id = c.document_id
WHERE c.id = ANY(%(ids)s)"""
_LEXEMES_SQL = "SELECT tsvector_to_array(to_tsvector('english', %s))"


def pool_sets() -> list[str]:
    return sorted(p.name for p in BENCH.glob("*.jsonl") if p.name not in BLIND and not p.name.startswith(NOT_RETRIEVAL))


def collect(settings: Settings, path: Path, vectors: np.ndarray) -> list[dict[str, Any]]:
    """Per question: both candidate lists (with cosine, and full-text rank), the question's lexemes, and which of
    them each candidate uses."""
    conn = _connection(settings)
    n = candidate_count(CHUNKS_FETCHED, "hybrid")
    conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(max(40, n, 2 * CHUNKS_FETCHED)),))
    frequent = _frequent_lexemes(settings)
    out = []
    for row, qvec in zip(load_eval_set(path), vectors, strict=True):
        params = {"qvec": np.asarray(qvec, np.float32), "q": row.query, "acl": ["public"], "n": n}
        vec = [[int(r[0]), int(r[1]), r[2], float(r[3])] for r in conn.execute(_VEC_SQL, params).fetchall()]
        fts = [
            [int(r[0]), int(r[1]), r[2], float(r[3]), float(r[4])]
            for r in conn.execute(_FTS_SQL, {**params, "frequent": frequent}).fetchall()
        ]
        ids = sorted({r[0] for r in vec} | {r[0] for r in fts})
        pages = {str(i): p for i, p in conn.execute(_PAGES_SQL, {"qvec": params["qvec"], "ids": ids}).fetchall()}
        parsed = conn.execute(_LEXEMES_SQL, (row.query,)).fetchone()
        lexemes = list(parsed[0]) if parsed is not None else []
        matched = {str(i): list(m) for i, m in conn.execute(_MATCHED_SQL, {"lexemes": lexemes, "ids": ids})}
        out.append({"query": row.query, "relevant": list(row.relevant), "vec": vec, "fts": fts, "pages": pages,
                    "lexemes": lexemes, "matched": matched})  # fmt: skip
    return out


def _candidates(item: dict[str, Any]) -> dict[int, tuple[str, float, float | None]]:
    """chunk -> (uri, cosine, full-text rank or None) over both lists."""
    out: dict[int, tuple[str, float, float | None]] = {r[0]: (r[2], r[3], None) for r in item["vec"]}
    for r in item["fts"]:
        out[r[0]] = (r[2], r[4], r[3])
    return out


# Session 14's fusion: the full-text list's saturated ts_rank_cd, r / (r + 1), in place of the share of words.
SESSION14 = {"weight": 0.2, "page": 0.25, "saturation": 1.0}


def replay(item: dict[str, Any], params: FusionParams | None, shares: dict[str, float], floor: float) -> list[str]:
    """The documents a hybrid search ranks with `params`, fused as `lore.search.build_query` fuses (None: session
    14's fusion, SESSION14)."""
    weights = dict(zip(item["lexemes"], coverage_weights(item["lexemes"], shares, floor), strict=True))
    scores: dict[int, float] = {}
    candidates = _candidates(item)
    pages: dict[str, float | None] = item["pages"]
    on_pages = [(c, p) for chunk, (_, c, _) in candidates.items() if (p := pages[str(chunk)]) is not None]
    best = max(on_pages, default=None)
    gap = best[0] - best[1] if best is not None else None
    share = params.page if params is not None else SESSION14["page"]
    weight = params.fulltext_weight(query_profile(item["query"])) if params is not None else SESSION14["weight"]
    for chunk, (_, cosine, rank) in candidates.items():
        page = pages[str(chunk)]
        if page is None:  # a one-passage document: its passage, less the gap of the best candidate on a longer page
            page = cosine - gap if gap is not None else cosine
        if params is None:
            own = cosine + (weight * rank / (rank + SESSION14["saturation"]) if rank is not None else 0.0)
        else:
            own = cosine + weight * sum(weights[lex] for lex in item["matched"][str(chunk)])
        scores[chunk] = (1 - share) * own + share * page
    ranked = sorted(scores, key=lambda c: (-scores[c], c))[:CHUNKS_FETCHED]
    return ranked_documents([candidates[c][0] for c in ranked])


def replay_rrf(item: dict[str, Any]) -> list[str]:
    """The documents reciprocal rank fusion ranked (until session 10: no heading bonus, no rarity term)."""
    weight = RRF_BEFORE["identifier" if query_profile(item["query"]).identifiers else "natural"]
    scores: dict[int, float] = {}
    uris: dict[int, str] = {}
    for rows, w in ((item["vec"], 1.0), (item["fts"], weight)):
        for rank, row in enumerate(rows, start=1):
            scores[row[0]] = scores.get(row[0], 0.0) + w / (RRF_K + rank)
            uris[row[0]] = row[2]
    ranked = sorted(scores, key=lambda c: (-scores[c], c))[:CHUNKS_FETCHED]
    return ranked_documents([uris[c] for c in ranked])


def metrics(
    items: list[dict[str, Any]], params: FusionParams | None, words: tuple[dict[str, float], float], mode: str
) -> tuple[float, float]:
    """Mean (recall@5, MRR@10) of a mode over the questions (hybrid: replayed with `params`; "session14": session
    14's fusion)."""
    rec = mrr = 0.0
    for item in items:
        if mode in ("vector", "fulltext"):
            rows = item["vec" if mode == "vector" else "fts"][:CHUNKS_FETCHED]
            docs = ranked_documents([row[2] for row in rows])
        elif mode == "rrf":
            docs = replay_rrf(item)
        else:
            docs = replay(item, params if mode == "hybrid" else None, *words)
        r, rr, _ = score_ranking(docs, tuple(item["relevant"]), K)
        rec += r
        mrr += rr
    return rec / len(items), mrr / len(items)


STUFFING_RATIO = 0.2  # the full-text weight of session 11's fusion, before the page term


def grid() -> list[FusionParams]:
    weights = (0.1, 0.125, 0.15, 0.175, 0.2)
    return [
        FusionParams(natural=natural, identifier=identifier, page=page)
        for natural, identifier, page in itertools.product(weights, weights, (0.2, 0.25, 0.3, 0.325, 0.35, 0.375, 0.4))
        if max(natural, identifier) <= STUFFING_RATIO + 1e-9
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/lore-fusion-cache-v4.json"))
    parser.add_argument("--refresh", action="store_true", help="read the candidate lists again")
    args = parser.parse_args()
    settings = Settings()
    names = pool_sets() + BLIND
    data = json.loads(args.cache.read_text()) if args.cache.exists() and not args.refresh else {}
    if any(name not in data for name in names):
        from lore.embeddings import get_embedder

        for name in names:
            rows = load_eval_set(BENCH / name)
            vectors = np.asarray(get_embedder(settings).embed([r.query for r in rows]), np.float32)
            data[name] = collect(settings, BENCH / name, vectors)
        data["_shares"] = lexeme_shares(settings)
        args.cache.write_text(json.dumps(data))
    words = (data["_shares"]["shares"], data["_shares"]["floor"])
    pool = {name: data[name] for name in pool_sets()}
    blind = {name: data[name] for name in BLIND}
    best_single = {
        name: max(metrics(items, None, words, m)[1] for m in ("vector", "fulltext")) for name, items in pool.items()
    }

    def evaluate(params: FusionParams) -> tuple[float, float]:
        """(mean MRR@10 over the POOL sets, the least margin of hybrid over the better single mode)."""
        mrrs = {name: metrics(items, params, words, "hybrid")[1] for name, items in pool.items()}
        return sum(mrrs.values()) / len(mrrs), min(mrrs[n] - best_single[n] for n in mrrs)

    scored = [(params, *evaluate(params)) for params in grid()]
    admissible = [s for s in scored if s[2] >= 0] or scored
    chosen, mean, margin = max(admissible, key=lambda s: s[1])
    print(f"chosen on POOL ({len(admissible)} of {len(scored)} settings never below the better single mode):")
    print(f"  {asdict(chosen)}: mean MRR@10 {mean:.4f}, least margin over the better single mode {margin:+.3f}")
    shipped = FusionParams()
    print(f"  shipped {asdict(shipped)}: mean {evaluate(shipped)[0]:.4f}, least margin {evaluate(shipped)[1]:+.3f}")
    before = [metrics(items, None, words, "session14")[1] for items in pool.values()]
    print(f"  session 14's fusion (ts_rank_cd): mean {sum(before) / len(before):.4f}, least margin "
          f"{min(b - best_single[n] for b, n in zip(before, pool, strict=True)):+.3f}")  # fmt: skip
    rrf = [metrics(items, None, words, "rrf")[1] - best_single[n] for n, items in pool.items()]
    rrf_mean = sum(metrics(items, None, words, "rrf")[1] for items in pool.values()) / len(pool)
    print(f"  reciprocal rank fusion (before): mean {rrf_mean:.4f}, least margin {min(rrf):+.3f}, "
          f"below the better single mode on {sum(m < 0 for m in rrf)} of {len(rrf)} sets")  # fmt: skip
    print("| set | n | vector | full text | RRF (until session 10) | session 14 | chosen | shipped |")
    print("|---|---:|---|---|---|---|---|---|")
    for label, sets in (("POOL", pool), ("BLIND", blind)):
        for name, items in sets.items():
            cells = [metrics(items, None, words, m) for m in ("vector", "fulltext", "rrf", "session14")]
            cells += [metrics(items, p, words, "hybrid") for p in (chosen, shipped)]
            text = " | ".join(f"{r:.3f} / {m:.3f}" for r, m in cells)
            print(f"| {label}: {name} | {len(items)} | {text} |")
    print("cells: recall@5 / MRR@10, documents ranked as `lore eval retrieval` ranks them")


if __name__ == "__main__":
    main()
