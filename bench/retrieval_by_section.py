"""Hybrid MRR@10 of question sets by the section of the docs their gold page is in (library, c-api, whatsnew, …).

    LORE_HOME=/work/kb/pydocs .venv/bin/python bench/retrieval_by_section.py fresh22_rephrasings fresh23_rephrasings

Each name is a bench/NAME.jsonl set ("query", "relevant"); scored as `lore eval retrieval` scores (by page, the
first 40 hits), with the feedback memory off. The section is the gold page's first path component ("top" for a
page at the root).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))


def by_section(name: str) -> dict[str, list[float]]:
    from lore.config import get_settings
    from lore.eval import ranked_documents, score_ranking
    from lore.search import hybrid_search

    settings = get_settings()
    found: dict[str, list[float]] = defaultdict(list)
    for line in (BENCH / f"{name}.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        hits = hybrid_search(settings, row["query"], k=40, use_feedback=False)
        _, rr, _ = score_ranking(ranked_documents([h.uri for h in hits]), tuple(row["relevant"]), 5)
        gold = str(row["relevant"][0])
        found[gold.split("/")[0] if "/" in gold else "top"].append(rr)
        found["all"].append(rr)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+", help="names of bench/NAME.jsonl question sets")
    for name in parser.parse_args().sets:
        found = by_section(name)
        cells = ", ".join(f"{k} {sum(v) / len(v):.3f} ({len(v)})" for k, v in sorted(found.items()))
        print(f"{name}: {cells}", flush=True)


if __name__ == "__main__":
    main()
