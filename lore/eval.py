"""Retrieval evaluation: recall@k, MRR@10 and nDCG@10 of each search mode over a JSONL question set.

Rows are `{"query": str, "relevant": [uri substrings]}`. Ranking is by document: the chunks a search
returns are reduced to their documents in order (a document found three times is one result), and a
result is relevant when its uri contains one of the row's substrings (each substring is credited once).
By default the feedback term is left out so figures do not drift with votes; `use_feedback=True` searches as
answers do (with the feedback memory), so a team can see what its votes do to retrieval.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lore.config import Settings
from lore.embeddings import get_embedder
from lore.search import MODES, hybrid_search

# Documents ranked per query (MRR and nDCG are @10), and chunks fetched to find that many documents.
DEPTH = 10
CHUNKS_FETCHED = 40


class EvalFileError(ValueError):
    """The eval set cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class EvalRow:
    query: str
    relevant: tuple[str, ...]


@dataclass(frozen=True)
class ModeResult:
    mode: str
    n: int
    k: int
    recall_at_k: float
    mrr: float
    ndcg_at_10: float

    def as_json(self, *, with_mode: bool = False) -> dict[str, Any]:
        document: dict[str, Any] = {"mode": self.mode} if with_mode else {}
        document.update(
            {"n": self.n, "recall@k": self.recall_at_k, "mrr": self.mrr, "ndcg@10": self.ndcg_at_10, "k": self.k}
        )
        return document


def load_eval_set(path: Path) -> list[EvalRow]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalFileError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalFileError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        query, relevant = (data.get("query"), data.get("relevant")) if isinstance(data, dict) else (None, None)
        if not isinstance(query, str) or not query.strip():
            raise EvalFileError(f'{path}:{number}: "query" must be a non-empty string')
        if not isinstance(relevant, list) or not relevant or not all(isinstance(r, str) and r for r in relevant):
            raise EvalFileError(f'{path}:{number}: "relevant" must be a non-empty list of uri substrings')
        rows.append(EvalRow(query.strip(), tuple(relevant)))
    if not rows:
        raise EvalFileError(f"{path}: no questions in the file")
    return rows


def ranked_documents(uris: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for uri in uris:
        if uri not in seen:
            seen.add(uri)
            out.append(uri)
    return out


def score_ranking(uris: list[str], relevant: tuple[str, ...], k: int) -> tuple[float, float, float]:
    """(recall@k, reciprocal rank @10, nDCG@10) of one ranked list of document uris."""
    credited: set[str] = set()
    gains: list[int] = []
    first_hit: int | None = None
    for rank, uri in enumerate(uris[: max(k, DEPTH)], start=1):
        matched = [r for r in relevant if r in uri and r not in credited]
        credited.update(matched)
        gains.append(1 if matched else 0)
        if matched and first_hit is None:
            first_hit = rank
    found_at_k: set[str] = set()
    for uri in uris[:k]:
        found_at_k.update(r for r in relevant if r in uri)
    recall = len(found_at_k) / len(relevant)
    rr = 1.0 / first_hit if first_hit is not None and first_hit <= DEPTH else 0.0
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:DEPTH]))
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), DEPTH)))
    return recall, rr, dcg / ideal if ideal else 0.0


def evaluate(
    settings: Settings, rows: list[EvalRow], *, modes: list[str], k: int = 5, use_feedback: bool = False
) -> list[ModeResult]:
    """Run every question through each mode (with the feedback memory when `use_feedback`, as answers search);
    queries are embedded once, in one batch."""
    vectors = get_embedder(settings).embed([row.query for row in rows])
    results = []
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        totals = [0.0, 0.0, 0.0]
        for row, vector in zip(rows, vectors, strict=True):
            hits = hybrid_search(
                settings,
                row.query,
                k=max(CHUNKS_FETCHED, 4 * k),
                mode=mode,
                query_embedding=vector,
                use_feedback=use_feedback,
            )
            for i, value in enumerate(score_ranking(ranked_documents([h.uri for h in hits]), row.relevant, k)):
                totals[i] += value
        n = len(rows)
        results.append(ModeResult(mode, n, k, *(round(t / n, 4) for t in totals)))
    return results
