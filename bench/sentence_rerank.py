"""Does a passage's best sentence find the right page for everyday wordings better than the whole passage does?

A passage's vector is the mean of ~200 words; an everyday question often matches one of its sentences far better than
the mean. This experiment re-scores hybrid search's candidates with the cosine of each passage's best sentence (the
bundled embedder, sentences as search-only answers split them: lore.extract) and asks, set by set, what that does to
MRR@10 by page, as `lore eval retrieval` scores it (the first 40 hits, feedback memory off).

    LORE_HOME=KB .venv/bin/python bench/sentence_rerank.py run --out /tmp/s.json SET...   # search + embed, once
    .venv/bin/python bench/sentence_rerank.py score /tmp/s.json [--weights 0,0.1,0.2] [--sets SET,...]

`run` records, per question, every hit's page, fused score, passage cosine and best-sentence cosine; `score`
re-ranks from that record with new = fused + w * max(0, best sentence - passage cosine) (a sentence can only add
what the passage's mean lost), for each weight w, so weights are chosen on seen sets and reported on blind ones
without searching again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

DEFAULT_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
# Only the first TOP hits are re-scored (what a re-ranker at answer time could afford to embed).
TOP = 20


def _sentences(text: str) -> list[str]:
    from lore.extract import passage_sentences, split_sentences

    found = passage_sentences(text)
    if found:
        return found
    return [s for s in split_sentences(" ".join(text.split())) if len(s.split()) >= 3] or [text]


def run(names: list[str], out: Path) -> None:
    from lore.config import get_settings
    from lore.embeddings import get_embedder
    from lore.eval import CHUNKS_FETCHED, load_eval_set
    from lore.search import search_scored

    settings = get_settings()
    embedder = get_embedder(settings)
    best_of: dict[int, np.ndarray] = {}  # chunk id -> its sentences' vectors
    record: dict[str, list[dict[str, object]]] = {}
    for name in names:
        rows = load_eval_set(BENCH / f"{name}.jsonl")
        vectors = embedder.embed([row.query for row in rows])
        record[name] = []
        for row, vector in zip(rows, vectors, strict=True):
            hits = search_scored(
                settings, row.query, k=CHUNKS_FETCHED, mode="hybrid", query_embedding=vector, use_feedback=False
            )
            missing = [s.hit for s in hits[:TOP] if s.hit.chunk_id not in best_of]
            texts = [_sentences(hit.text) for hit in missing]
            flat = [t for group in texts for t in group]
            if flat:
                embedded = embedder.embed(flat)
                start = 0
                for hit, group in zip(missing, texts, strict=True):
                    best_of[hit.chunk_id] = embedded[start : start + len(group)]
                    start += len(group)
            record[name].append(
                {
                    "relevant": list(row.relevant),
                    "hits": [
                        [
                            s.hit.uri,
                            s.hit.score,
                            s.similarity if s.similarity is not None else 0.0,
                            float(np.max(best_of[s.hit.chunk_id] @ vector)) if rank < TOP else 0.0,
                        ]
                        for rank, s in enumerate(hits)
                    ],
                }
            )
        print(f"{name}: {len(rows)} questions, {len(best_of)} passages embedded so far", flush=True)
    out.write_text(json.dumps(record))


def _mrr(questions: list[dict[str, object]], weight: float) -> float:
    from lore.eval import ranked_documents, score_ranking

    total = 0.0
    for q in questions:
        hits = q["hits"]
        assert isinstance(hits, list)
        rescored = sorted(hits, key=lambda h: -(h[1] + weight * max(0.0, h[3] - h[2])))
        relevant = tuple(q["relevant"])  # type: ignore[arg-type]
        total += score_ranking(ranked_documents([h[0] for h in rescored]), relevant, 5)[1]
    return total / len(questions)


def score(path: Path, weights: list[float], sets: list[str] | None) -> None:
    record = json.loads(path.read_text())
    names = sets or list(record)
    print("set | n | " + " | ".join(f"w={w:g}" for w in weights))
    means = np.zeros(len(weights))
    for name in names:
        row = [_mrr(record[name], w) for w in weights]
        means += row
        print(f"{name} | {len(record[name])} | " + " | ".join(f"{m:.3f}" for m in row))
    print(f"mean of {len(names)} | | " + " | ".join(f"{m:.3f}" for m in means / len(names)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("sets", nargs="+")
    s = sub.add_parser("score")
    s.add_argument("record", type=Path)
    s.add_argument("--weights", default=",".join(f"{w:g}" for w in DEFAULT_WEIGHTS))
    s.add_argument("--sets", default="")
    args = parser.parse_args()
    if args.command == "run":
        run(args.sets, args.out)
    else:
        score(args.record, [float(w) for w in args.weights.split(",")], [n for n in args.sets.split(",") if n] or None)


if __name__ == "__main__":
    main()
