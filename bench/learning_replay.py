"""Replay the feedback memory offline: one run of votes, then any number of settings in seconds.

`bench/learning.py` runs the whole protocol for each setting (minutes on the whole Python docs). This script runs
its votes stage once and keeps what the memory needs, so that thresholds, bounds and the memory's constants can be
compared on the same votes:

1. `collect`: on a copy of the knowledge base, the votes stage of bench/learning.py (search-only answers, one user
   model; `--stage comparisons` or `corrections` runs its later stages too, in its order); then the memory as a
   searching process holds it (question matrix, evidence by page, what each answer showed) and, per original
   wording, its candidate pages with the memory off: each page's best score and best cosine to the question, and
   the question's embedding.
2. `replay`: for each setting, the shipped rule itself (`FeedbackIndex.moves` on that memory, with the setting's
   threshold and bound, capped by the pages' scores as search caps it (`bound_for`), and any constant of
   lore.feedback_memory overridden) moves each page's score; the pages are ranked again and MRR@10 is compared
   with the memory off, on voted questions (lift) and untouched ones (harm).

Pages are ranked by their best candidate, as `lore eval retrieval` ranks them. Search applies a move to each of a
page's passages before its near-duplicate collapse, so a replayed figure can differ from bench/learning.py's by a
question or two, and the unseen-page guard's ceiling (UNSEEN_GUARD, off by default) is not replayed; a setting
worth shipping is run there before it ships (docs/benchmarks.md, session 12).

    .venv/bin/python bench/learning_replay.py collect --kb /work/kb/pydocs --split pool --users strict --out votes.json
    .venv/bin/python bench/learning_replay.py replay votes.json --grid 0.35:0.4,0.3:0.4 --set MATCH_MARGIN=0.2
    .venv/bin/python bench/learning_replay.py replay votes.json --set SPREAD_RANK=0 --changes   # without the cap
    .venv/bin/python bench/learning_replay.py collect --kb /work/kb/pydocs --split pool --stage corrections --out c.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import learning  # noqa: E402


def collect(args: argparse.Namespace) -> None:
    questions = learning.load_questions(args.split)
    with learning.bench_home(args):
        import numpy as np

        import lore.feedback_memory as memory
        from lore.config import get_settings
        from lore.embeddings import get_embedder
        from lore.search import _feedback_index, search_scored

        settings = get_settings()
        learning.reset_feedback(settings)
        voted, untouched = questions[0::2], questions[1::2]
        texts = [q.query for q in questions]
        vectors = dict(zip(texts, get_embedder(settings).embed(texts), strict=True))
        asked = learning.ask_and_vote(settings, voted, args.users, None)
        # The later stages of bench/learning.py, in its order: they add to the votes, as there.
        if args.stage in ("comparisons", "corrections"):
            learning.compare_after_regenerate(settings, asked, None)
        if args.stage == "corrections":
            from lore.db import raw_connection

            with raw_connection(settings) as conn:
                uris = [str(r[0]) for r in conn.execute("SELECT uri FROM documents ORDER BY uri").fetchall()]
            learning.correct(settings, asked, uris)
        # What each answer showed is loaded only for the unseen-page guard: turn it on for this one reload.
        guard, memory.UNSEEN_GUARD = memory.UNSEEN_GUARD, 1
        try:
            index = _feedback_index(settings)
            index.version, index.stale = None, True
            index = _feedback_index(settings)
        finally:
            memory.UNSEEN_GUARD = guard
        held = index._memory
        rows = []
        for part, group in (("voted", voted), ("untouched", untouched)):
            for q in group:
                qvec = np.asarray(vectors[q.query], np.float32)
                hits = search_scored(settings, q.query, k=learning.FETCHED, query_embedding=qvec, use_feedback=False)
                pages: dict[int, list[Any]] = {}
                for h in hits:  # hits come best first: the first of a page is its best score
                    page = pages.setdefault(h.hit.document_id, [h.hit.uri, h.hit.score, h.similarity])
                    page[2] = max(page[2], h.similarity or -1.0)
                rows.append(
                    {
                        "qid": q.qid,
                        "part": part,
                        "relevant": list(q.relevant),
                        "qvec": qvec.tolist(),
                        "pages": [[d, *v] for d, v in pages.items()],
                    }
                )
        out = {
            "split": args.split,
            "users": args.users,
            "stage": args.stage,
            "threshold": settings.feedback_threshold,
            "weight": settings.feedback_weight,
            "votes": [[a.question.qid, a.votes] for a in asked],
            "matrix": held.matrix.tolist(),
            "evidence": {str(d): [list(r), list(w), list(n)] for d, (r, w, n) in held.evidence.items()},
            "shown": [sorted(s) for s in held.shown],
            "questions": rows,
        }
    args.out.write_text(json.dumps(out))
    print(f"{len(rows)} questions, {len(out['matrix'])} past questions with evidence -> {args.out}")


def replay(args: argparse.Namespace) -> None:
    import numpy as np

    import lore.feedback_memory as memory
    from lore.config import Settings
    from lore.eval import score_ranking
    from lore.types import EMBEDDING_DIM

    data = json.loads(args.data.read_text())
    learning.override_constants(args.set)
    held = memory._Memory(
        np.asarray(data["matrix"], np.float32).reshape(-1, EMBEDDING_DIM),
        {int(d): (list(r), list(w), list(n)) for d, (r, w, n) in data["evidence"].items()},
        [frozenset(s) for s in data["shown"]],
    )
    index = memory.FeedbackIndex()
    index._memory = held
    base = Settings()
    cells = args.grid.split(",") if args.grid else [f"{data['threshold']}:{data['weight']}"]
    stage = data.get("stage", "votes")
    print(f"{data['split']} / {data['users']}: voted Δ / untouched Δ MRR@10 after {stage} (replayed)")
    for cell in cells:
        threshold, weight = (float(x) for x in cell.split(":"))
        settings = base.model_copy(update={"feedback_threshold": threshold, "feedback_weight": weight})
        before: dict[str, list[float]] = {"voted": [], "untouched": []}
        after: dict[str, list[float]] = {"voted": [], "untouched": []}
        for q in data["questions"]:
            pages = q["pages"]
            matches = {int(p[0]): float(p[3]) for p in pages}
            scores = {int(p[0]): float(p[2]) for p in pages}
            moves = index.moves(settings, np.asarray(q["qvec"], np.float32), matches, scores=scores)
            moved = sorted(pages, key=lambda p: -(p[2] + (moves[p[0]].amount if p[0] in moves else 0.0)))
            relevant = tuple(q["relevant"])
            before[q["part"]].append(score_ranking([p[1] for p in pages], relevant, 5)[1])
            after[q["part"]].append(score_ranking([p[1] for p in moved], relevant, 5)[1])
            if args.changes and after[q["part"]][-1] != before[q["part"]][-1]:
                print_change(q, pages, moved, moves, held, before[q["part"]][-1], after[q["part"]][-1])
        deltas = {
            part: (sum(after[part]) - sum(before[part])) / max(1, len(before[part])) for part in ("voted", "untouched")
        }
        print(f"  {threshold:.2f} : {weight:.2f}  {deltas['voted']:+.4f} / {deltas['untouched']:+.4f}")


def print_change(
    q: dict[str, Any], pages: list[Any], moved: list[Any], moves: Any, held: Any, was: float, now: float
) -> None:
    """For a question whose MRR@10 moved: its gold page and the pages first before and after the votes, each with
    its score, its best cosine to the question, its move and the nearest past question with evidence about it."""
    import numpy as np

    qvec = np.asarray(q["qvec"], np.float32)
    best = max(float(p[3]) for p in pages)
    gold = next((p for p in pages if any(r in p[1] for r in q["relevant"])), None)

    def describe(page: list[Any]) -> str:
        document = int(page[0])
        amount = moves[document].amount if document in moves else 0.0
        rows, weights, named = held.evidence.get(document, ([], [], []))
        near = ""
        if rows:
            sims = held.matrix[rows] @ qvec
            i = int(np.argmax(sims))
            near = f" near {sims[i]:.2f} w {weights[i]:+.2f}{' named' if named[i] else ''}"
        return (
            f"{page[1].rsplit('/', 1)[-1]} s {page[2]:.3f} m {page[3]:.3f} (best-{best - page[3]:.3f})"
            f" move {amount:+.3f}{near}"
        )

    top_before, top_after = pages[0], moved[0]
    print(f"    {q['part']:9} {q['qid']:6} MRR {was:.2f} -> {now:.2f}")
    print(f"      gold: {describe(gold) if gold else '-'}")
    for label, page in (("first before", top_before), ("first after", top_after)):
        if gold is None or page[0] != gold[0]:
            print(f"      {label}: {describe(page)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="run the votes stage once and keep what the memory needs")
    c.add_argument("--kb", type=Path, help="a LORE_HOME with the whole Python docs, copied before use")
    c.add_argument("--home", type=Path, help="a LORE_HOME to use as it is (a copy: its feedback is emptied)")
    c.add_argument("--split", choices=("tune", "report", "all", "pool", *learning.FILES), default="pool")
    c.add_argument("--users", choices=learning.USER_MODELS, default="strict")
    c.add_argument("--threshold", type=float, help="LORE_FEEDBACK_THRESHOLD while the votes are cast")
    c.add_argument(
        "--stage",
        choices=("votes", "comparisons", "corrections"),
        default="votes",
        help="the memory after the votes, after the comparisons too, or after the corrections too",
    )
    c.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("replay", help="replay settings on collected votes")
    r.add_argument("data", type=Path)
    r.add_argument("--grid", help="threshold:bound cells, comma-separated (default: the collected run's)")
    r.add_argument("--changes", action="store_true", help="print each question whose MRR@10 moved, and why")
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a lore.feedback_memory constant")
    args = parser.parse_args()
    if args.command == "collect":
        collect(args)
    else:
        replay(args)


if __name__ == "__main__":
    main()
