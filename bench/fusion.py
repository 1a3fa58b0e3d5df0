"""Query-aware fusion: fit its few parameters on a TUNE half of the question sets, report on the rest.

Each question's candidate lists are read once from the knowledge base (the vector scan and the full-text scan as
`lore.search` runs them, `candidate_count` deep, plus each candidate's heading words and the question's lexemes
with their document frequencies from PostgreSQL's statistics); the fusion is then replayed in Python for every
parameter setting of a small grid (`lore.search.FusionParams`), scored by document as `lore eval retrieval`
scores (recall@5, MRR@10). The setting with the best mean MRR@10 over the TUNE questions (mean over sets, so the
identifier set counts as much as the larger natural ones) is reported on the REPORT questions: the other half of
the tuned sets, and the fresh sets, which are never used to choose anything.

    LORE_HOME=/tmp/pydocs .venv/bin/python bench/fusion.py [--cache FILE]

Then check the chosen setting end to end, with the search code itself: `lore eval retrieval FILE --mode all`.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from lore.config import Settings
from lore.eval import CHUNKS_FETCHED, load_eval_set, ranked_documents, score_ranking
from lore.search import (
    _FULLTEXT_CTE,
    RRF_K,
    FusionParams,
    _connection,
    _frequent_lexemes,
    candidate_count,
    lexeme_shares,
    query_profile,
)

BENCH = Path(__file__).resolve().parent
TUNED = ["eval_python_docs.jsonl", "eval_python_docs_everyday.jsonl", "eval_python_docs_keywords.jsonl"]
FRESH = ["fusion_natural.jsonl", "fusion_everyday.jsonl", "fusion_identifiers.jsonl"]
K = 5
BEFORE_WEIGHT = 0.7  # the fixed full-text weight hybrid search used before query-aware fusion

_VEC_SQL = """SELECT id, document_id, uri FROM chunks WHERE acl && %(acl)s::text[]
ORDER BY embedding <=> %(qvec)s LIMIT %(n)s"""
_FTS_SQL = f"WITH {_FULLTEXT_CTE} SELECT f.id, c.document_id, c.uri FROM fts f JOIN chunks c USING (id) ORDER BY f.rank"
_HEADINGS_SQL = "SELECT id, tsvector_to_array(to_tsvector('english', heading)) FROM chunks WHERE id = ANY(%s)"
_LEXEMES_SQL = "SELECT tsvector_to_array(to_tsvector('english', %s))"


def collect(settings: Settings, path: Path, vectors: np.ndarray) -> list[dict[str, Any]]:
    """Per question: both candidate lists, the candidates' heading lexemes, the question's lexemes."""
    conn = _connection(settings)
    n = candidate_count(CHUNKS_FETCHED, "hybrid")
    conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(max(40, n, 2 * CHUNKS_FETCHED)),))
    frequent = _frequent_lexemes(settings)
    out = []
    for row, qvec in zip(load_eval_set(path), vectors, strict=True):
        params = {"qvec": qvec, "q": row.query, "acl": ["public"], "n": n, "frequent": frequent}
        vec = [list(r) for r in conn.execute(_VEC_SQL, params).fetchall()]
        fts = [list(r) for r in conn.execute(_FTS_SQL, params).fetchall()]
        ids = sorted({r[0] for r in vec} | {r[0] for r in fts})
        headings = {int(i): list(lex) for i, lex in conn.execute(_HEADINGS_SQL, (ids,)).fetchall()}
        lexemes = list(conn.execute(_LEXEMES_SQL, (row.query,)).fetchone()[0])
        out.append(
            {
                "query": row.query,
                "relevant": list(row.relevant),
                "vec": vec,
                "fts": fts,
                "headings": headings,
                "lexemes": lexemes,
            }
        )
    return out


def replay(
    item: dict[str, Any], params: FusionParams, shares: dict[str, float], floor: float, *, by_document: bool = False
) -> list[str]:
    """The documents a fused search would rank with `params`: chunk-level RRF as lore.search fuses (then chunks
    reduced to documents), or `by_document`: each list reduced to its documents first, then fused."""
    lexemes = item["lexemes"]
    weight = params.fulltext_weight(query_profile(item["query"]), params.rare_share(lexemes, shares, floor))
    wanted = [lex for lex in lexemes if shares.get(lex, floor) <= params.heading_max_share]
    key = (lambda row: row[2]) if by_document else (lambda row: row[0])
    scores: dict[Any, float] = {}
    uris: dict[Any, str] = {}
    for rows, w in ((item["vec"], 1.0), (item["fts"], weight)):
        seen: set[Any] = set()
        for row in rows:
            if key(row) in seen:
                continue
            seen.add(key(row))
            scores[key(row)] = scores.get(key(row), 0.0) + w / (RRF_K + len(seen))
            uris[key(row)] = row[2]
    if params.heading_weight and wanted:
        bonus: dict[Any, float] = {}
        for row in item["vec"] + item["fts"]:
            heading = item["headings"].get(str(row[0])) or item["headings"].get(row[0]) or []
            share = sum(1 for lex in wanted if lex in heading) / len(wanted)
            bonus[key(row)] = max(bonus.get(key(row), 0.0), share)
        for k in scores:
            scores[k] += params.heading_weight * bonus.get(k, 0.0) / (RRF_K + 1)
    ranked = sorted(scores, key=lambda c: (-scores[c], str(c)))
    if not by_document:
        ranked = ranked[:CHUNKS_FETCHED]
    return ranked_documents([uris[c] for c in ranked])


def metrics(
    items: list[dict[str, Any]],
    params: FusionParams | None,
    words: tuple[dict[str, float], float],
    mode: str = "hybrid",
    *,
    by_document: bool = False,
) -> tuple[float, float]:
    """Mean (recall@5, MRR@10) of a mode over the questions (hybrid: replayed with `params`)."""
    rec = mrr = 0.0
    for item in items:
        if mode in ("vector", "fulltext"):
            rows = item["vec" if mode == "vector" else "fts"][:CHUNKS_FETCHED]
            docs = ranked_documents([row[2] for row in rows])
        else:
            assert params is not None
            docs = replay(item, params, *words, by_document=by_document)
        r, rr, _ = score_ranking(docs, tuple(item["relevant"]), K)
        rec += r
        mrr += rr
    return rec / len(items), mrr / len(items)


def grid() -> list[FusionParams]:
    base = FusionParams()
    out = []
    for natural, identifier, rare, below, heading in itertools.product(
        (0.0, 0.1, 0.2, 0.35, 0.5, 0.7),
        (0.7, 1.0, 1.5, 2.0, 3.0),
        (0.0, 0.5, 1.0, 2.0),
        (0.001, 0.003),
        (0.0, 0.1, 0.25, 0.5, 1.0),
    ):
        if rare == 0.0 and below != 0.001:
            continue  # the threshold means nothing without a rarity term
        out.append(
            replace(base, natural=natural, identifier=identifier, rare=rare, rare_below=below, heading_weight=heading)
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/lore-fusion-cache.json"))
    parser.add_argument("--refresh", action="store_true", help="read the candidate lists again")
    args = parser.parse_args()
    settings = Settings()
    if args.cache.exists() and not args.refresh:
        data = json.loads(args.cache.read_text())
    else:
        from lore.embeddings import get_embedder

        data = {}
        for name in TUNED + FRESH:
            rows = load_eval_set(BENCH / name)
            vectors = get_embedder(settings).embed([r.query for r in rows])
            data[name] = collect(settings, BENCH / name, vectors)
        data["_shares"] = lexeme_shares(settings)
        args.cache.write_text(json.dumps(data))
    words = (data["_shares"]["shares"], data["_shares"]["floor"])
    tune = {name: data[name][0::2] for name in TUNED}
    report = {f"{name} (other half)": data[name][1::2] for name in TUNED}
    report.update({f"{name} (fresh)": data[name] for name in FRESH})

    def objective(params: FusionParams, by_document: bool = False) -> float:
        """Mean over the TUNE sets of MRR@10, less a penalty for recall@5 lost against vector search alone."""
        total = 0.0
        for items in tune.values():
            rec, mrr = metrics(items, params, words, by_document=by_document)
            total += mrr - max(0.0, metrics(items, None, words, "vector")[0] - rec)
        return total / len(tune)

    before = replace(FusionParams(), natural=BEFORE_WEIGHT, identifier=BEFORE_WEIGHT, rare=0.0, heading_weight=0)
    full = grid()
    two = [p for p in full if not p.rare and not p.heading_weight]  # the two weights alone
    chosen = {
        "full grid": (max(full, key=objective), False),
        "two weights": (max(two, key=objective), False),
        "full grid, by document": (max(full, key=lambda p: objective(p, True)), True),
    }
    for label, (params, flag) in chosen.items():
        print(f"chosen on TUNE ({label}): {asdict(params)}, objective {objective(params, flag):.3f}")
    print(f"fixed weight {BEFORE_WEIGHT} (before): objective {objective(before):.3f}")
    print(f"| set | n | vector | full text | hybrid before | {' | '.join(chosen)} |")
    print("|---|---:|---|---|---|" + "---|" * len(chosen))
    for label, sets in (("TUNE", tune), ("REPORT", report)):
        for name, items in sets.items():
            cells = [metrics(items, None, words, mode) for mode in ("vector", "fulltext")]
            cells.append(metrics(items, before, words))
            cells += [metrics(items, params, words, by_document=flag) for params, flag in chosen.values()]
            text = " | ".join(f"{r:.3f} / {m:.3f}" for r, m in cells)
            print(f"| {label}: {name} | {len(items)} | {text} |")
    print("cells: recall@5 / MRR@10, documents ranked as `lore eval retrieval` ranks them")


if __name__ == "__main__":
    main()
