"""Per-question trace of learning from votes: what the votes on each rephrasing did to its original wording.

bench/learning.py reports averages; this says why. For one user model, on a copy of the knowledge base, each voted
question's rephrasings are asked and voted on exactly as there (search-only answers), then every original wording
is searched with the feedback memory off and on. One line per asked rephrasing: its cosine to the original, the
votes, whether the answer led with a gold page, and where the gold page and that lead rank for the original before
and after. Every untouched question that moved is listed with the voted rephrasings near it (the cross-talk).

    .venv/bin/python bench/learning_trace.py --kb /work/kb/pydocs --split all --users strict
    .venv/bin/python bench/learning_trace.py --kb /work/kb/pydocs --split pool --threshold 0.35 --set UNSEEN_GUARD=1
    .venv/bin/python bench/learning_trace.py --kb /work/kb/pydocs --split fresh23 --corrections   # and corrections
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import learning  # noqa: E402


def rank_of(documents: list[str], wanted: Any) -> int | None:
    return next((i for i, uri in enumerate(documents, start=1) if wanted(uri)), None)


def short(uri: str | None) -> str:
    return (uri or "-").rsplit("/", 1)[-1]


def trace(args: argparse.Namespace) -> list[dict[str, Any]]:
    import numpy as np

    from lore.config import get_settings
    from lore.db import raw_connection
    from lore.embeddings import get_embedder
    from lore.migrations import upgrade_database

    settings = get_settings()
    upgrade_database(settings)
    learning.override_constants(args.set)
    questions = learning.load_questions(args.split)
    voted, untouched = questions[0::2], questions[1::2]
    texts = [q.query for q in questions] + [r for q in voted for r in q.rephrasings]
    vectors = dict(zip(texts, get_embedder(settings).embed(texts), strict=True))

    learning.reset_feedback(settings)
    before = {q.qid: learning.ranking(settings, q, vectors, feedback=False) for q in questions}
    asked = learning.ask_and_vote(settings, voted, args.users, None)
    if args.corrections:  # then the 👎 voters name the gold page, as the benchmark's last stage
        with raw_connection(settings) as conn:
            uris = [str(r[0]) for r in conn.execute("SELECT uri FROM documents ORDER BY uri").fetchall()]
        learning.correct(settings, asked, uris)
    after = {q.qid: learning.ranking(settings, q, vectors, feedback=True) for q in questions}
    print(f"threshold {settings.feedback_threshold}; {len(asked)} rephrasings asked, {args.users} users")
    print("question: gold rank before -> after | per rephrasing: cosine, votes, lead gold?, lead rank before -> after")
    rows = []
    for item in asked:
        q = item.question
        lead = learning.first_cited(item.answer)

        def gold(uri: str, q: learning.Question = q) -> bool:
            return learning.is_gold(uri, q.relevant)

        rows.append(
            {
                "qid": q.qid,
                "cosine": round(float(np.dot(vectors[q.query], vectors[item.rephrasing])), 3),
                "votes": sum(item.votes),
                "lead_gold": bool(lead and gold(lead)),
                "lead": lead,
                "gold_before": rank_of(before[q.qid], gold),
                "gold_after": rank_of(after[q.qid], gold),
                "lead_before": rank_of(before[q.qid], lambda uri, lead=lead: uri == lead),
                "lead_after": rank_of(after[q.qid], lambda uri, lead=lead: uri == lead),
            }
        )
    for qid in dict.fromkeys(r["qid"] for r in rows):
        mine = [r for r in rows if r["qid"] == qid]
        parts = " | ".join(
            f"{r['cosine']:.2f} {r['votes']:+d} {'G' if r['lead_gold'] else 'x'} {r['lead_before']}->{r['lead_after']}"
            for r in mine
        )
        print(f"{qid} {mine[0]['gold_before']} -> {mine[0]['gold_after']}  {parts}")
    for q in untouched:
        was = rank_of(before[q.qid], lambda uri, q=q: learning.is_gold(uri, q.relevant))
        now = rank_of(after[q.qid], lambda uri, q=q: learning.is_gold(uri, q.relevant))
        if was != now:
            print(f"UNTOUCHED {q.qid} {was} -> {now}: {q.query}")
            print(
                f"    top before {[short(u) for u in before[q.qid][:3]]}, after {[short(u) for u in after[q.qid][:3]]}"
            )
            for item in asked:
                cosine = float(np.dot(vectors[q.query], vectors[item.rephrasing]))
                if cosine >= settings.feedback_threshold - 0.05:
                    lead = short(learning.first_cited(item.answer))
                    print(
                        f"    near: {item.question.qid} {cosine:.3f} votes {sum(item.votes):+d} led {lead}:",
                        item.rephrasing,
                    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kb", type=Path, help="a LORE_HOME with the whole Python docs, copied before use")
    parser.add_argument("--home", type=Path, help="a LORE_HOME to use as it is (a copy: its feedback is emptied)")
    parser.add_argument("--split", default="all", choices=("tune", "all", "pool", *learning.FILES))
    parser.add_argument("--users", default="strict", choices=learning.USER_MODELS)
    parser.add_argument("--corrections", action="store_true", help="after the votes, the 👎 voters name the gold page")
    parser.add_argument("--threshold", type=float, help="LORE_FEEDBACK_THRESHOLD for this run")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="as in bench/learning.py")
    parser.add_argument("--out", type=Path, help="write the per-rephrasing rows as JSON here")
    args = parser.parse_args()
    if not (args.kb or args.home):
        raise SystemExit("--kb or --home: a knowledge base with the whole Python docs")
    with learning.bench_home(args):
        rows = trace(args)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
