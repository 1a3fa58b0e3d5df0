"""Two knowledge bases built from the same documents by two chunkers, searched with the same code: which finds the
right pages better, set by set, and how many questions each moves.

    LORE_HOME=/work/kb/pydocs  .venv/bin/python bench/chunker_compare.py run --out /tmp/v3.json SET...
    LORE_HOME=/work/kb/pydocs4 .venv/bin/python bench/chunker_compare.py run --out /tmp/v4.json SET...
    .venv/bin/python bench/chunker_compare.py compare /tmp/v3.json /tmp/v4.json
    .venv/bin/python bench/chunker_compare.py cost /work/kb/pydocs /work/kb/pydocs4     # what embedding costs

Each SET is a bench/NAME.jsonl question set ("query", "relevant"), scored as `lore eval retrieval` scores (by
page, the first 40 hits, feedback memory off), in hybrid, vector and full-text mode. `run` records every question's
reciprocal rank and whether a gold page is in the first five; `compare` prints, per set and mode, MRR@10 and
recall@5 of both, and the questions the second ranks better and worse. `cost` embeds the passages of the same
pages (every 25th document by uri) from each knowledge base with the bundled model, alternating three times, and
prints passages, tokens and seconds: what ingesting costs in embedding, as a ratio measured in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

MODES = ("hybrid", "vector", "fulltext")


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
            if mode not in a[name] or mode not in b[name]:
                continue
            x, y = a[name][mode], b[name][mode]
            n = len(x)
            better = sum(1 for (p, _), (q, _) in zip(x, y, strict=True) if q > p + 1e-9)
            worse = sum(1 for (p, _), (q, _) in zip(x, y, strict=True) if q < p - 1e-9)
            mrr = f"{sum(r for r, _ in x) / n:.3f} → {sum(r for r, _ in y) / n:.3f}"
            recall = f"{sum(h for _, h in x) / n:.3f} → {sum(h for _, h in y) / n:.3f}"
            print(f"{name} | {mode} | {n} | {mrr} | {recall} | {better} / {worse}")


def cost(homes: list[Path]) -> None:
    from lore.config import Settings
    from lore.db import raw_connection
    from lore.embeddings import LocalEmbedder
    from lore.onnx_embedder import bundled_model_dir, load_tokenizer, read_model_spec

    embedder = LocalEmbedder()
    tokenizer = load_tokenizer(bundled_model_dir(), read_model_spec(bundled_model_dir()))  # truncates as it embeds
    inputs: dict[Path, list[str]] = {}
    for home in homes:
        with raw_connection(Settings(LORE_HOME=str(home))) as conn:  # type: ignore[call-arg]
            rows = conn.execute(
                "WITH sample AS (SELECT id FROM (SELECT id, row_number() OVER (ORDER BY uri) AS n FROM documents) d"
                " WHERE n % 25 = 0) SELECT c.heading, c.text FROM chunks c JOIN sample s ON s.id = c.document_id"
                " ORDER BY c.document_id, c.ord"
            ).fetchall()
        inputs[home] = [f"{heading}\n{text}" if heading else text for heading, text in rows]
    # What the embedder reads of each home's passages (it truncates at its limit), counted before the slow part.
    tokens = {home: sum(len(e.ids) for e in tokenizer.encode_batch(inputs[home])) for home in homes}
    embedder.embed(["warm up"] * 64)
    seconds = {home: 0.0 for home in homes}
    for _ in range(3):
        for home in homes:
            started = time.perf_counter()
            embedder.embed(inputs[home])
            seconds[home] += time.perf_counter() - started
    first = homes[0]
    for home in homes:
        print(
            f"{home}: {len(inputs[home])} passages, {tokens[home]} tokens embedded, {seconds[home] / 3:.1f} s"
            f" ({seconds[home] / seconds[first]:.2f}x the first)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    running = commands.add_parser("run", help="score every question of the sets on LORE_HOME's knowledge base")
    running.add_argument("--out", type=Path, required=True)
    running.add_argument("sets", nargs="+", help="names of bench/NAME.jsonl question sets")
    comparing = commands.add_parser("compare", help="compare two runs' JSON")
    comparing.add_argument("first", type=Path)
    comparing.add_argument("second", type=Path)
    costing = commands.add_parser("cost", help="embed the same pages' passages from each LORE_HOME")
    costing.add_argument("homes", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "run":
        run(args.sets, args.out)
    elif args.command == "compare":
        compare(args.first, args.second)
    else:
        cost(args.homes)


if __name__ == "__main__":
    main()
