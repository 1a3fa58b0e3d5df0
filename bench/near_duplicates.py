"""Near-duplicate collapse on real documents: how far apart near-duplicates are in sign bits, how often a
search must fetch embeddings to confirm a pair, and whether the results equal an exact comparison of every pair.

    .venv/bin/python bench/near_duplicates.py [--home DIR] [--files 63] [--edits 300]

Without --home it ingests every fifth page of /usr/share/doc/python3.11/html/library (up to --files pages;
`apt-get install python3.11-doc`) into a temporary LORE_HOME with the offline embedder (about a minute).
Not run in CI.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, and bench/ingest.py would shadow `ingest`.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import psycopg  # noqa: E402

import lore.search  # noqa: E402
from ingest.pipeline import ingest_sources  # noqa: E402
from lore.config import Settings  # noqa: E402
from lore.db import database_url, dispose_engines, register_vectors, stop_embedded  # noqa: E402
from lore.embeddings import get_embedder  # noqa: E402
from lore.search import NEAR_DUPLICATE_COSINE, search_scored  # noqa: E402

DOCS = Path("/usr/share/doc/python3.11/html/library")


def edited(text: str, kind: str, rnd: random.Random) -> str:
    """The kinds of edits that make a second copy of a passage: spacing and case, a word or three, a line."""
    words = text.split()
    if kind == "case":
        return text.replace("The ", "the ").replace("  ", " ")
    if kind == "word":
        words[rnd.randrange(len(words))] = "version"
    elif kind == "words3":
        for _ in range(3):
            words[rnd.randrange(len(words))] = rnd.choice(["new", "3.12", "updated", "value"])
    elif kind == "append":
        return text + " See also the changelog."
    return " ".join(words)


def sign_bits_apart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(((a > 0) != (b > 0)).sum(-1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="a LORE_HOME that already holds a knowledge base")
    parser.add_argument("--files", type=int, default=63)
    parser.add_argument("--edits", type=int, default=300, help="chunks to copy with edits")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="lore-bench-near-"))
    settings = Settings().model_copy(update={"lore_home": home, "database_url": None, "embeddings": "local"})
    from lore.migrations import upgrade_database

    upgrade_database(settings)
    try:
        if args.home is None:
            pages = home / "pages"
            pages.mkdir()
            for page in sorted(DOCS.glob("*.html"))[4::5][: args.files]:
                shutil.copy(page, pages / page.name)
            report = ingest_sources(settings, [str(pages)])
            print(f"ingested {report.documents_added} pages, {report.chunks_added} chunks")
        run(settings, args.edits)
    finally:
        dispose_engines()
        if args.home is None:
            stop_embedded(settings)
            shutil.rmtree(home, ignore_errors=True)


def run(settings: Settings, edits: int) -> None:
    with psycopg.connect(database_url(settings)) as conn:
        register_vectors(conn)
        rows = conn.execute("SELECT text, embedding, heading FROM chunks ORDER BY id").fetchall()
    texts = [str(r[0]) for r in rows]
    headings = [str(r[2] or "") for r in rows]
    vectors = np.stack([np.asarray(r[1], np.float32) for r in rows])
    embedder = get_embedder(settings)
    rnd = random.Random(1)

    # 1. Near-duplicates in sign bits: edited copies of real chunks (embedded as the chunks were: heading first).
    sample = rnd.sample(range(len(texts)), min(edits, len(texts)))
    cosines, apart = [], []
    for kind in ("case", "word", "words3", "append"):
        copies = embedder.embed([_embed_input(headings[i], edited(texts[i], kind, rnd)) for i in sample])
        cosines.append((vectors[sample] * copies).sum(1))
        apart.append(sign_bits_apart(vectors[sample], copies))
    cos, bits = np.concatenate(cosines), np.concatenate(apart)
    near = cos >= NEAR_DUPLICATE_COSINE
    print(f"\nedited copies: {len(cos)} pairs, {near.sum()} near-duplicates (cosine >= {NEAR_DUPLICATE_COSINE});"
          f" their sign bits apart: median {np.median(bits[near]):.0f}, p99 {np.percentile(bits[near], 99):.0f},"
          f" max {bits[near].max()} (SIGN_BITS_APART = {lore.search.SIGN_BITS_APART})")  # fmt: skip
    gram = vectors @ vectors.T
    first, second = np.nonzero(np.triu(gram >= NEAR_DUPLICATE_COSINE, 1))
    if len(first):
        natural = sign_bits_apart(vectors[first], vectors[second])
        print(
            f"near-duplicates among the chunks themselves: {len(first)} pairs, sign bits apart at most {natural.max()}"
        )

    # 2. Searches: how many fetch embeddings, and the results against comparing every pair exactly.
    questions = list(dict.fromkeys(h.split(" > ")[-1] for h in headings if h))[:400]
    qvecs = embedder.embed(questions)
    fetched = {"n": 0}
    real = lore.search._embeddings

    def counting(s: Settings, ids: list[int]) -> dict[int, np.ndarray]:
        fetched["n"] += 1
        return real(s, ids)

    lore.search._embeddings = counting  # type: ignore[assignment]
    try:
        print("\n| mode | questions | searches that fetched embeddings | results unlike the exact comparison |")
        print("|---|---:|---:|---:|")
        for mode in ("vector", "hybrid"):
            fetched["n"] = 0
            ours = [_ids(settings, q, v, mode) for q, v in zip(questions, qvecs, strict=True)]
            ours_fetched = fetched["n"]
            lore.search.SIGN_BITS_APART = 384  # every pair is a candidate: every pair compared exactly
            try:
                exact = [_ids(settings, q, v, mode) for q, v in zip(questions, qvecs, strict=True)]
            finally:
                lore.search.SIGN_BITS_APART = SIGN_BITS
            unlike = sum(a != b for a, b in zip(ours, exact, strict=True))
            print(f"| {mode} | {len(questions)} | {ours_fetched} ({ours_fetched / len(questions):.0%}) | {unlike} |")
    finally:
        lore.search._embeddings = real  # type: ignore[assignment]
    sizes = [len(t) for t in texts]
    print(f"\n({len(texts)} chunks, median {statistics.median(sizes):.0f} characters)")


def _embed_input(heading: str, text: str) -> str:
    return f"{heading}\n{text}" if heading else text  # as ingest.chunking.ChunkText.embed_input


def _ids(settings: Settings, question: str, qvec: np.ndarray, mode: str) -> list[Any]:
    return [h.hit.chunk_id for h in search_scored(settings, question, k=10, mode=mode, query_embedding=qvec)]


SIGN_BITS = lore.search.SIGN_BITS_APART

if __name__ == "__main__":
    main()
