"""Two knowledge bases built from the same documents by two chunkers, searched with the same code: which finds the
right pages better, set by set, and how many questions each moves.

    LORE_HOME=/work/kb/pydocs  .venv/bin/python bench/chunker_compare.py run --out /tmp/v3.json SET...
    LORE_HOME=/work/kb/pydocs4 .venv/bin/python bench/chunker_compare.py run --out /tmp/v4.json SET...
    .venv/bin/python bench/chunker_compare.py compare /tmp/v3.json /tmp/v4.json

Each SET is a bench/NAME.jsonl question set ("query", "relevant"), scored as `lore eval retrieval` scores (by
page, the first 40 hits, feedback memory off), in hybrid and vector mode. `run` records every question's
reciprocal rank and whether a gold page is in the first five; `compare` prints, per set and mode, MRR@10 and
recall@5 of both, and the questions the second ranks better and worse.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

MODES = ("hybrid", "vector")


def run(names: list[str], out: Path) -> None:
    from lore.config import get_settings
    from lore.embeddings import get_embedder
    from lore.eval import CHUNKS_FETCHED, load_eval_set, ranked_documents, score_ranking
    from lore.search import hybrid_search

    settings = get_settings()
    found: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for name in names:
        rows = load_eval_set(BENCH / f"{name}.jsonl")
        vectors = get_embedder(settings).embed([row.query for row in rows])
        found[name] = {}
        for mode in MODES:
            scores = []
            for row, vector in zip(rows, vectors, strict=True):
                hits = hybrid_search(
                    settings, row.query, k=CHUNKS_FETCHED, mode=mode, query_embedding=vector, use_feedback=False
                )
                recall, rr, _ = score_ranking(ranked_documents([h.uri for h in hits]), row.relevant, 5)
                scores.append((rr, recall))
            found[name][mode] = scores
        hybrid = found[name]["hybrid"]
        print(f"{name}: hybrid MRR@10 {sum(r for r, _ in hybrid) / len(hybrid):.3f}", flush=True)
    out.write_text(json.dumps(found))


def compare(first: Path, second: Path) -> None:
    a = json.loads(first.read_text())
    b = json.loads(second.read_text())
    print(f"set | mode | n | MRR@10 {first.stem} → {second.stem} | recall@5 | better / worse")
    for name in a:
        if name not in b:
            continue
        for mode in MODES:
            x, y = a[name][mode], b[name][mode]
            n = len(x)
            better = sum(1 for (p, _), (q, _) in zip(x, y, strict=True) if q > p + 1e-9)
            worse = sum(1 for (p, _), (q, _) in zip(x, y, strict=True) if q < p - 1e-9)
            mrr = f"{sum(r for r, _ in x) / n:.3f} → {sum(r for r, _ in y) / n:.3f}"
            recall = f"{sum(h for _, h in x) / n:.3f} → {sum(h for _, h in y) / n:.3f}"
            print(f"{name} | {mode} | {n} | {mrr} | {recall} | {better} / {worse}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    running = commands.add_parser("run", help="score every question of the sets on LORE_HOME's knowledge base")
    running.add_argument("--out", type=Path, required=True)
    running.add_argument("sets", nargs="+", help="names of bench/NAME.jsonl question sets")
    comparing = commands.add_parser("compare", help="compare two runs' JSON")
    comparing.add_argument("first", type=Path)
    comparing.add_argument("second", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.sets, args.out)
    else:
        compare(args.first, args.second)


if __name__ == "__main__":
    main()
