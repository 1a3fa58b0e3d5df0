"""Search-only answers, old (whole passages) vs new (extracted sentences): how often the shown text holds the answer.

The handbook (`examples/`) is ingested into a throwaway LORE_HOME (or --home); each question of
bench/extract_answers.jsonl (the 30 of examples/eval.jsonl, each with the phrases that answer it) is retrieved
once, exactly as a search-only answer retrieves, and both answer texts are built from those same hits:
- old: `lore.prompts.search_only_answer` (the first 400 characters of each source's best passage);
- new: `lore.agent.search_only_text` (lore.extract: the sentences that answer, then the sources).
Counted in the quoted text only (not the header, not the source titles), after dropping Markdown emphasis and
collapsing whitespace, case-insensitively: questions whose shown text contains one of their answer phrases,
words shown, and answers showing Markdown table pipes or emphasis marks.

    .venv/bin/python bench/extract.py [--home DIR] [--show]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.bench_env import isolate  # noqa: E402


def quoted_text(answer: str) -> str:
    """The text an answer shows from the knowledge base: its quote lines, without header and source list."""
    return "\n".join(line[2:] for line in answer.splitlines() if line.startswith("> "))


def normalise(text: str) -> str:
    return " ".join(re.sub(r"\*\*|__|`", "", text).split()).lower()


def contains_answer(answer: str, phrases: list[str]) -> bool:
    shown = normalise(quoted_text(answer))
    return any(normalise(p) in shown for p in phrases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="LORE_HOME to use (default: a throwaway directory)")
    parser.add_argument("--answers", type=Path, default=ROOT / "bench" / "extract_answers.jsonl")
    parser.add_argument("--show", action="store_true", help="print each question's new answer")
    args = parser.parse_args()
    home = args.home.resolve() if args.home else Path(tempfile.mkdtemp(prefix="lore-bench-extract-"))
    isolate(home, LORE_LOG_LEVEL="WARNING")

    from ingest.pipeline import ingest_sources
    from lore.agent import _retrieve, search_only_text
    from lore.config import get_settings
    from lore.db import stop_embedded
    from lore.migrations import upgrade_database
    from lore.prompts import search_only_answer
    from lore.search import embed_query
    from lore.sources import SourceBook
    from lore.types import Asker

    settings = get_settings()
    upgrade_database(settings)
    report = ingest_sources(settings, [str(ROOT / "examples")]).as_json()
    if report["errors"]:
        raise SystemExit(f"ingest failed: {report['errors'][:3]}")
    rows = [json.loads(line) for line in args.answers.read_text(encoding="utf-8").splitlines() if line.strip()]
    found = {"old": 0, "new": 0}
    words: dict[str, list[int]] = {"old": [], "new": []}
    markup = {"old": 0, "new": 0}
    took: list[float] = []
    for row in rows:
        qvec = embed_query(settings, row["query"])
        hits = _retrieve(settings, row["query"], asker=Asker(), history=(), k=settings.answer_k, qvec=qvec)
        started = time.perf_counter()
        texts = {"new": search_only_text(settings, qvec, hits, SourceBook())}
        took.append((time.perf_counter() - started) * 1000)
        texts["old"] = search_only_answer(SourceBook().add(hits))
        for kind, text in texts.items():
            found[kind] += contains_answer(text, row["answer"])
            words[kind].append(len(quoted_text(text).split()))
            markup[kind] += bool(re.search(r"\||\*\*|^#", quoted_text(text), re.M))
        if args.show:
            mark = "ok " if contains_answer(texts["new"], row["answer"]) else "MISS"
            print(f"{mark} {row['query']}\n{quoted_text(texts['new'])}\n")
    stop_embedded(settings)
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)
    n = len(rows)
    print(f"{n} handbook questions, k={settings.answer_k}; new answer built in p50 {statistics.median(took):.0f} ms")
    print("| answer | shows the answer | words shown (median) | answers with table pipes or ** |")
    print("|---|---:|---:|---:|")
    for kind, label in (("old", "whole passages (before)"), ("new", "extracted sentences (now)")):
        print(
            f"| {label} | {found[kind]}/{n} ({found[kind] / n:.0%}) | {statistics.median(words[kind]):.0f} |"
            f" {markup[kind]} |"
        )


if __name__ == "__main__":
    main()
