"""Learning from votes, on the whole Python docs: do the team's votes lift answers to similar questions, and never hurt?

Knowledge base: the whole Python 3.11 HTML docs (12k+ chunks, `--kb /work/kb/pydocs`, copied first; or `--home` for
a LORE_HOME that already is a copy). `--quick` ingests only the questions' gold pages and their neighbours (a
smaller, easier knowledge base: a smoke test, not a figure to report).

Questions (written for this benchmark): bench/learning_questions.jsonl (80 questions with gold pages, uri
substrings; each row has "split": "tune" or "report") and bench/learning_rephrasings.jsonl (two everyday
rephrasings per question, linked by "of"). Blind sets, one everyday rephrasing each, written from the docs alone
without looking at any search result: bench/fresh_*.jsonl (60 questions), fresh2 (40), fresh3 (60), fresh4 (50),
fresh5 (60), fresh6 (50), fresh7 (60), fresh8 (60), fresh9 (60), fresh10 (60), fresh11 (60), fresh12 to fresh29 (60
each). Parameters are chosen on `--split pool` (the 80 and the blind sets already reported once: fresh to fresh27;
1,660 questions since the end of session 20, 1,540 during it, 1,420 in session 19), and the figures to report come
from the newest blind sets (fresh28 and fresh29, `--split fresh28`, reported in session 20), run once per
configuration. In each split, every other question is "voted": its rephrasings are asked; the others are
"untouched".

Protocol, per user model and attribution (search-only answers; a scripted chat model that cites [n]):
1. the feedback tables are emptied; each rephrasing of a voted question is asked through `answer_question` (what
   `lore ask` and the bot run), and three users vote on the answer:
   strict: 👍 iff the top citation is a gold page; lenient: 👍 iff any cited source is; naming: lenient users who
   answer "Which source answered it?" (asked after a 👍 on an answer with several sources) with the first gold
   page cited; naming-one: the same, but only the first of the three users answers it; noisy: strict with 15 %
   of votes flipped (fixed seed); hostile: the first user 👎 everything, the two others are strict;
2. the ORIGINAL wordings are searched with the feedback memory off (the anchor, same run) and on (as answers
   search): MRR@10 and recall@5 by page, on voted questions (lift) and untouched ones (harm);
3. "which is better?": each 👎'd answer is regenerated (the bot's Regenerate settings) and, when exactly one of
   the two leads with a gold page, the three users choose it; measured again;
4. corrections: the 👎 voters name the gold page in a correction; measured again.

    .venv/bin/python bench/learning.py --kb /work/kb/pydocs --split pool --users strict --attribution search-only \
        --set UNSEEN_GUARD=0 --sweep 0.4:0.04:0.25,0.35:0.04:0.25        # variants: constants, thresholds
    .venv/bin/python bench/learning.py --kb /work/kb/pydocs --split fresh12
    .venv/bin/python bench/learning.py --kb /work/kb/pydocs --split fresh12 --memory OLD_feedback_memory.py \
        --threshold 0.4 --attribution search-only                            # an earlier revision, same harness
    .venv/bin/python bench/learning.py --kb /work/kb/pydocs --split pool --users strict --ceiling   # the headroom
    .venv/bin/python bench/learning.py --quick
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import json
import random
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.bench_env import copy_home, isolate  # noqa: E402

QUESTIONS = ROOT / "bench" / "learning_questions.jsonl"
REPHRASINGS = ROOT / "bench" / "learning_rephrasings.jsonl"
# The blind sets, written from the docs alone without looking at any search result (docs/benchmarks.md says when
# each was run): fresh (60 questions), fresh2 (40), fresh3 (60), fresh4 (50), fresh5 (60), fresh6 (50), fresh7 (60),
# fresh8 (60), fresh9 (60), fresh10 (60), fresh11 (60) and fresh12 to fresh29 (60 each).
BLIND_SETS = ("fresh", *(f"fresh{n}" for n in range(2, 30)))
FILES = {
    name: (ROOT / "bench" / f"{name}_questions.jsonl", ROOT / "bench" / f"{name}_rephrasings.jsonl")
    for name in BLIND_SETS
}
# The blind sets already looked at by this benchmark, which choosing parameters may now use (split "pool"): fresh to
# fresh27. fresh10 and fresh11 reported votes in session 14, fresh12 to fresh27 in sessions 14 to 20, and joined the
# pool after. fresh28 and fresh29 (written in session 20 from the pages alone) reported once at its end; they join
# the pool when newer blind sets are written to report next.
TUNED = BLIND_SETS[: BLIND_SETS.index("fresh27") + 1]
DOCS = Path("/usr/share/doc/python3.11/html")
USER_MODELS = ("strict", "lenient", "naming", "naming-one", "noisy", "hostile")
VOTERS = 3
NOISE = 0.15
SEED = 20
# Chunks fetched per evaluated question (as `lore eval retrieval` does), so that 10 pages can be ranked.
FETCHED = 40
# The bot's Regenerate settings (bot/regenerate.py; bench/ must not import bot/).
REGENERATE = {"temperature": 0.9, "k": 16}
_CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_SOURCE = re.compile(r'<source id="(\d+)" title="[^"]*" uri="([^"]*)">')


@dataclass(frozen=True)
class Question:
    qid: str
    split: str
    query: str
    relevant: tuple[str, ...]
    rephrasings: tuple[str, ...]


def load_questions(split: str) -> list[Question]:
    """The questions of a split: tune or report (bench/learning_*.jsonl), all (both), a blind set of FILES, or
    pool: all and the blind sets that have been seen (TUNED), the questions parameters are chosen on since
    session 10 (240 then, 290 in session 11, 520 since session 12 added fresh5 to fresh8, 580 since session 13 added
    fresh9, 700 since session 14 added fresh10 and fresh11)."""
    if split == "pool":
        return [q for name in ("all", *TUNED) for q in load_questions(name)]
    questions, rephrased = FILES.get(split, (QUESTIONS, REPHRASINGS))
    rephrasings: dict[str, list[str]] = {}
    for line in rephrased.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rephrasings.setdefault(row["of"], []).append(row["query"])
    out = []
    for line in questions.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if split in ("all", row["split"]):
                relevant = tuple(row["relevant"])
                # Two blind sets may reuse an id (fresh and fresh5 both start at F01): qualified by the set's name,
                # a question's id is unique in the pool.
                qid = f"{split}/{row['id']}" if split in FILES else row["id"]
                out.append(Question(qid, row["split"], row["query"], relevant, tuple(rephrasings[row["id"]])))
    return out


def is_gold(uri: str, relevant: tuple[str, ...]) -> bool:
    return any(r in uri for r in relevant)


# -- the scripted chat model ------------------------------------------------------------------------------------


def citing_model(gold: dict[str, tuple[str, ...]]) -> Any:
    """A chat model that answers like a careful LLM: it recognises the source that answers (a gold page) 80 % of
    the time and leads with it, often also cites [1]; without a gold source it cites [1] (and sometimes [2])."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class CitingModel(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "scripted-citing"

        def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **_: Any) -> Any:
            prompt = str(messages[-1].content)
            question = prompt.rsplit("Question:", 1)[-1].split("\n", 1)[0].strip()
            sources = [(int(n), uri) for n, uri in _SOURCE.findall(prompt)]
            rng = random.Random(f"{SEED}:{question}")
            relevant = gold.get(question, ())
            right = [n for n, uri in sources if is_gold(uri, relevant)]
            cited: list[int] = []
            if right and rng.random() < 0.8:
                cited.append(right[0])
                if right[0] != 1 and rng.random() < 0.5:
                    cited.append(1)
            elif sources:
                cited.append(sources[0][0])
                if len(sources) > 1 and rng.random() < 0.5:
                    cited.append(sources[1][0])
            text = " ".join(f"This is explained in the documentation [{n}]." for n in cited) or "I don't know."
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    return CitingModel()


def first_cited(answer: Any) -> str | None:
    """The uri of the source an answer leads with: the first one cited inline when a model wrote it, else the top."""
    if not answer.citations:
        return None
    if answer.generated:
        by_number = {c.number: c.uri for c in answer.citations}
        for group in _CITE.findall(answer.text):
            for part in re.split(r"[,;]", group):
                if int(part.strip()) in by_number:
                    return by_number[int(part.strip())]
    return str(answer.citations[0].uri)


# -- user models ------------------------------------------------------------------------------------------------


def user_votes(model: str, answer: Any, relevant: tuple[str, ...], rng: random.Random) -> list[int]:
    """The three users' votes (+1 / -1) on one answer under a user model."""
    top = first_cited(answer)
    strict = 1 if top is not None and is_gold(top, relevant) else -1
    if model == "strict":
        return [strict] * VOTERS
    if model in ("lenient", "naming", "naming-one"):
        return [1 if any(is_gold(c.uri, relevant) for c in answer.citations) else -1] * VOTERS
    if model == "noisy":
        return [-strict if rng.random() < NOISE else strict for _ in range(VOTERS)]
    if model == "hostile":
        return [-1] + [strict] * (VOTERS - 1)
    raise ValueError(model)


# -- measuring --------------------------------------------------------------------------------------------------


def ranking(settings: Any, q: Question, vectors: dict[str, Any], *, feedback: bool) -> list[str]:
    """The pages a search for the original wording ranks, best first (as `lore eval retrieval` ranks them)."""
    from lore.eval import ranked_documents
    from lore.search import hybrid_search

    hits = hybrid_search(settings, q.query, k=FETCHED, query_embedding=vectors[q.query], use_feedback=feedback)
    return ranked_documents([h.uri for h in hits])


def measure(settings: Any, questions: list[Question], vectors: dict[str, Any], *, feedback: bool) -> dict[str, Any]:
    """MRR@10 and recall@5 (by page) of the original wordings, and each question's reciprocal rank."""
    from lore.eval import score_ranking

    per: dict[str, float] = {}
    recall = 0.0
    for q in questions:
        r5, rr, _ = score_ranking(ranking(settings, q, vectors, feedback=feedback), q.relevant, 5)
        per[q.qid] = rr
        recall += r5
    n = max(1, len(questions))
    return {"mrr": sum(per.values()) / n, "recall@5": recall / n, "rr": per}


def reset_feedback(settings: Any) -> None:
    """Empty every answer and the feedback on it, and tell searching processes the memory changed."""
    from lore.db import raw_connection
    from lore.feedback_memory import note_feedback

    with raw_connection(settings) as conn:
        conn.execute("TRUNCATE answers RESTART IDENTITY CASCADE")
        conn.execute("UPDATE feedback_state SET version = version + 1")
    note_feedback(settings)


@dataclass
class Asked:
    answer: Any
    question: Question
    rephrasing: str
    votes: list[int]


def named_source(answer: Any, relevant: tuple[str, ...]) -> str | None:
    """What a "naming" user answers to "Which source answered it?": the first gold page the answer cites, asked only
    when it cites several pages (as the bot asks)."""
    uris = list(dict.fromkeys(str(c.uri) for c in answer.citations))
    if len(uris) < 2:
        return None
    return next((uri for uri in uris if is_gold(uri, relevant)), None)


def ask_and_vote(settings: Any, voted: list[Question], user_model: str, chat_model: Any) -> list[Asked]:
    from lore.agent import answer_question
    from lore.feedback import record_source_pick, record_vote

    rng = random.Random(SEED)
    asked = []
    for q in voted:
        for rephrasing in q.rephrasings:
            answer = answer_question(settings, rephrasing, chat_model=chat_model)
            votes = user_votes(user_model, answer, q.relevant, rng)
            picked = named_source(answer, q.relevant) if user_model.startswith("naming") else None
            namers = 1 if user_model == "naming-one" else VOTERS
            for n, value in enumerate(votes):
                record_vote(settings, answer_id=int(answer.answer_id or 0), user_id=f"U{n}", value=value, via="cli")
                if picked and value > 0 and n < namers:
                    record_source_pick(
                        settings, answer_id=int(answer.answer_id or 0), user_id=f"U{n}", source_uri=picked
                    )
            asked.append(Asked(answer, q, rephrasing, votes))
    return asked


def compare_after_regenerate(settings: Any, asked: list[Asked], chat_model: Any) -> int:
    """Regenerate each 👎'd answer; the users choose the one that leads with a gold page, if exactly one does."""
    from lore.agent import answer_question
    from lore.feedback import record_comparison

    pairs = 0
    for item in asked:
        if sum(item.votes) >= 0:
            continue
        again = answer_question(
            settings,
            item.rephrasing,
            chat_model=chat_model,
            generation=dict(REGENERATE),
            parent_id=item.answer.answer_id,
        )
        first, second = (first_cited(a) for a in (item.answer, again))
        good = [a for a, top in ((item.answer, first), (again, second)) if top and is_gold(top, item.question.relevant)]
        if len(good) != 1:
            continue
        chosen = good[0]
        rejected = again if chosen is item.answer else item.answer
        for n in range(VOTERS):
            record_comparison(
                settings,
                chosen_id=int(chosen.answer_id or 0),
                rejected_id=int(rejected.answer_id or 0),
                user_id=f"U{n}",
            )
        pairs += 1
    return pairs


def correct(settings: Any, asked: list[Asked], uris: list[str]) -> int:
    """The 👎 voters of each answer name a gold page in a correction, as they would paste its link."""
    from lore.feedback import record_critique

    count = 0
    for item in asked:
        gold = next((u for u in uris if is_gold(u, item.question.relevant)), None)
        if gold is None:
            continue
        for n, value in enumerate(item.votes):
            if value < 0:
                record_critique(
                    settings,
                    answer_id=item.answer.answer_id,
                    user_id=f"U{n}",
                    critique="not the right page",
                    correction=f"The right page is {gold}",
                )
                count += 1
    return count


# -- one scenario -----------------------------------------------------------------------------------------------


@dataclass
class Split:
    voted: list[Question]
    untouched: list[Question]
    vectors: dict[str, Any]
    before: dict[str, dict[str, Any]]  # "voted" / "untouched" -> measure() with the feedback memory off


def ceiling(settings: Any, split: Split) -> dict[str, Any]:
    """The most the votes stage can lift the voted questions under strict users: a memory that uses exactly what
    their votes say about the question voted on. A 👍 says the answer's top page is right (it would rank first for
    the original wording); a 👎 says only that the top page is wrong (it would leave the ranking). Nothing is said
    about any other page, and no question is helped by the votes on another. Each rephrasing is answered once with
    an empty memory (search-only), as the first asker sees it."""
    from lore.agent import answer_question
    from lore.eval import score_ranking

    reset_feedback(settings)
    total = 0.0
    for q in split.voted:
        leads = [first_cited(answer_question(settings, r, chat_model=None)) for r in q.rephrasings]
        if any(lead is not None and is_gold(lead, q.relevant) for lead in leads):
            total += 1.0
            continue
        wrong = {lead for lead in leads if lead is not None}
        pages = [page for page in ranking(settings, q, split.vectors, feedback=False) if page not in wrong]
        total += score_ranking(pages, q.relevant, 5)[1]
    reset_feedback(settings)
    mrr = total / max(1, len(split.voted))
    return {"mrr": round(mrr, 4), "d_mrr": round(mrr - split.before["voted"]["mrr"], 4)}


def stage(settings: Any, split: Split) -> dict[str, Any]:
    on = {
        part: measure(settings, getattr(split, part), split.vectors, feedback=True) for part in ("voted", "untouched")
    }
    out: dict[str, Any] = {}
    for part in ("voted", "untouched"):
        before, after = split.before[part], on[part]
        out[part] = {
            "mrr": round(after["mrr"], 4),
            "recall@5": round(after["recall@5"], 4),
            "d_mrr": round(after["mrr"] - before["mrr"], 4),
            "d_recall@5": round(after["recall@5"] - before["recall@5"], 4),
            "worse": sum(after["rr"][q] < before["rr"][q] - 1e-9 for q in before["rr"]),
            "better": sum(after["rr"][q] > before["rr"][q] + 1e-9 for q in before["rr"]),
        }
    return out


def scenario(settings: Any, split: Split, *, user_model: str, chat_model: Any, uris: list[str]) -> dict[str, Any]:
    reset_feedback(settings)
    asked = ask_and_vote(settings, split.voted, user_model, chat_model)
    result: dict[str, Any] = {
        "asked": len(asked),
        "up": sum(v > 0 for a in asked for v in a.votes),
        "down": sum(v < 0 for a in asked for v in a.votes),
        "gold_below_top_in_downvoted": sum(
            1
            for a in asked
            if sum(a.votes) < 0 and any(is_gold(c.uri, a.question.relevant) for c in a.answer.citations[1:])
        ),
        "votes": stage(settings, split),
    }
    result["pairs"] = compare_after_regenerate(settings, asked, chat_model)
    result["comparisons"] = stage(settings, split)
    result["corrections"] = correct(settings, asked, uris)
    result["corrected"] = stage(settings, split)
    return result


# -- set-up -----------------------------------------------------------------------------------------------------


def use_memory_module(path: Path) -> None:
    """Run with another implementation of lore.feedback_memory (e.g. an earlier revision's, for a before/after in
    one harness): its evidence rules and its adjustments replace the current ones in recording and search."""
    import lore.feedback
    import lore.feedback_memory
    import lore.search

    spec = importlib.util.spec_from_file_location("feedback_memory_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module.FeedbackIndex, "moves"):  # before the unseen-page guard: its adjustments, unguarded

        def moves(self: Any, settings: Any, qvec: Any, documents: Any = None) -> dict[int, Any]:
            docs, amounts = self.adjustments(settings, qvec, documents)
            return {d: lore.feedback_memory.Move(a, frozenset()) for d, a in zip(docs, amounts, strict=True)}

        module.FeedbackIndex.moves = moves
        lore.feedback_memory.UNSEEN_GUARD = 0
    elif "scores" not in inspect.signature(module.FeedbackIndex.moves).parameters:
        # before the spread cap (session 16): the module's own bound, whatever the candidates' scores
        plain = module.FeedbackIndex.moves

        def uncapped(self: Any, settings: Any, qvec: Any, documents: Any = None, *, scores: Any = None) -> Any:
            return plain(self, settings, qvec, documents)

        module.FeedbackIndex.moves = uncapped
    lore.feedback.refresh_evidence = module.refresh_evidence
    lore.feedback.note_feedback = module.note_feedback
    lore.search.feedback_index = module.feedback_index
    lore.feedback_memory.note_feedback = module.note_feedback


def override_constants(assignments: list[str]) -> None:
    """Set constants of lore.feedback_memory (NAME=VALUE, numbers) for this run: a variant tried on the tune split."""
    import lore.feedback_memory as memory

    for assignment in assignments:
        name, _, value = assignment.partition("=")
        if not name.isupper() or not isinstance(getattr(memory, name, None), int | float):
            raise SystemExit(f"--set {assignment}: not a numeric constant of lore.feedback_memory")
        setattr(memory, name, type(getattr(memory, name))(float(value)))
        print(f"lore.feedback_memory.{name} = {getattr(memory, name)}")


def prepare_home(args: argparse.Namespace) -> tuple[Path, bool]:
    """(LORE_HOME, whether it is a throwaway copy to delete at the end)."""
    if args.home:
        return args.home.resolve(), False
    home = Path(tempfile.mkdtemp(prefix="lore-bench-learning-"))
    if args.kb:
        shutil.rmtree(home)
        copy_home(args.kb, home)
    return home, True


def quick_pages(questions: list[Question]) -> list[Path]:
    """The gold pages of the questions and the library pages next to them in the index (neighbours in name)."""
    library = sorted((DOCS / "library").glob("*.html"))
    names = [p.name for p in library]
    wanted: set[Path] = set()
    for q in questions:
        for rel in q.relevant:
            page = DOCS / rel
            if page.exists():
                wanted.add(page)
            if page.name in names:
                i = names.index(page.name)
                wanted.update(library[max(0, i - 1) : i + 2])
    return sorted(wanted)


@contextlib.contextmanager
def bench_home(args: argparse.Namespace) -> Iterator[None]:
    """The run's LORE_HOME (`prepare_home`) in an isolated environment, with `--threshold` if given; afterwards
    its embedded server is stopped and a throwaway copy deleted."""
    home, throwaway = prepare_home(args)
    extra = {} if args.threshold is None else {"LORE_FEEDBACK_THRESHOLD": str(args.threshold)}
    isolate(home, LORE_LOG_LEVEL="WARNING", **extra)
    try:
        yield
    finally:
        from lore.config import get_settings
        from lore.db import stop_embedded

        stop_embedded(get_settings())
        if throwaway:
            shutil.rmtree(home, ignore_errors=True)


def line(name: str, stage_result: dict[str, Any], split: Split) -> str:
    v, u = stage_result["voted"], stage_result["untouched"]
    bv, bu = split.before["voted"], split.before["untouched"]
    return (
        f"  {name:<14} voted MRR {bv['mrr']:.3f} -> {v['mrr']:.3f} ({v['d_mrr']:+.3f}), R@5 {bv['recall@5']:.2f} -> "
        f"{v['recall@5']:.2f}, {v['better']} better / {v['worse']} worse | untouched MRR {bu['mrr']:.3f} -> "
        f"{u['mrr']:.3f} ({u['d_mrr']:+.3f}), {u['worse']} worse"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kb", type=Path, help="a LORE_HOME with the whole Python docs, copied before use")
    parser.add_argument("--home", type=Path, help="a LORE_HOME to use as it is (a copy: its feedback is emptied)")
    parser.add_argument("--quick", action="store_true", help="ingest only the gold pages and their neighbours")
    parser.add_argument("--split", choices=("tune", "report", "all", "pool", *FILES), default="tune")
    parser.add_argument("--users", default=",".join(USER_MODELS), help="user models, comma-separated")
    parser.add_argument("--attribution", default="search-only,llm", help="search-only, llm, or both")
    parser.add_argument(
        "--sweep", metavar="T:W:S,...", help="also run these threshold:weight:negative-share (tune split only)"
    )
    parser.add_argument("--memory", type=Path, help="another lore/feedback_memory.py to run with (a baseline)")
    parser.add_argument("--threshold", type=float, help="LORE_FEEDBACK_THRESHOLD for this run (default: Lore's)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a constant of lore.feedback_memory for this run (e.g. NEGATIVE_SHARE=0.5; tune splits only)",
    )
    parser.add_argument(
        "--ceiling", action="store_true", help="also report the most strict votes could lift (`ceiling`)"
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if (args.sweep or args.set) and args.split not in ("tune", "all", "pool"):
        raise SystemExit("--sweep and --set only on the questions parameters are chosen on (tune, all, pool)")
    questions = load_questions(args.split)
    with bench_home(args):
        results = run(args, questions)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


def run(args: argparse.Namespace, questions: list[Question]) -> dict[str, Any]:
    from lore.config import get_settings
    from lore.db import raw_connection
    from lore.embeddings import get_embedder
    from lore.migrations import upgrade_database

    if args.memory:
        use_memory_module(args.memory)
    override_constants(args.set)
    settings = get_settings()
    upgrade_database(settings)
    if args.quick:
        from ingest.pipeline import ingest_sources

        report = ingest_sources(settings, [str(p) for p in quick_pages(questions)]).as_json()
        if report["errors"]:
            raise SystemExit(f"ingest failed: {report['errors'][:3]}")
    with raw_connection(settings) as conn:
        counted = conn.execute("SELECT count(*) FROM chunks").fetchone()
        chunks = int(counted[0]) if counted else 0
        uris = [str(r[0]) for r in conn.execute("SELECT uri FROM documents ORDER BY uri").fetchall()]
    voted, untouched = questions[0::2], questions[1::2]
    texts = [q.query for q in questions]
    vectors = dict(zip(texts, get_embedder(settings).embed(texts), strict=True))
    reset_feedback(settings)
    split = Split(voted, untouched, vectors, {})
    split.before = {
        part: measure(settings, getattr(split, part), vectors, feedback=False) for part in ("voted", "untouched")
    }
    print(
        f"knowledge base: {len(uris)} pages, {chunks} chunks; split {args.split}: {len(voted)} voted questions "
        f"({sum(len(q.rephrasings) for q in voted)} rephrasings asked), {len(untouched)} untouched"
    )
    print(f"threshold {settings.feedback_threshold}, weight {settings.feedback_weight}")
    gold = {r: q.relevant for q in voted for r in q.rephrasings}
    models = {"search-only": None, "llm": citing_model(gold)}
    chain = settings.model_copy(update={"agent_mode": "chain"})
    results: dict[str, Any] = {
        "split": args.split,
        "chunks": chunks,
        "before": {p: {k: round(v, 4) for k, v in m.items() if k != "rr"} for p, m in split.before.items()},
        "runs": [],
    }
    if args.ceiling:
        results["ceiling"] = ceiling(settings, split)
        print(
            f"ceiling (strict votes used perfectly, per question): voted MRR {split.before['voted']['mrr']:.3f} -> "
            f"{results['ceiling']['mrr']:.3f} ({results['ceiling']['d_mrr']:+.3f})"
        )
    for attribution in args.attribution.split(","):
        for user_model in args.users.split(","):
            used = chain if attribution == "llm" else settings
            got = scenario(used, split, user_model=user_model, chat_model=models[attribution], uris=uris)
            results["runs"].append({"attribution": attribution, "users": user_model, **got})
            print(
                f"{attribution} / {user_model}: {got['asked']} answers, {got['up']} up / {got['down']} down "
                f"(gold below the top in {got['gold_below_top_in_downvoted']} downvoted answers), "
                f"{got['pairs']} comparisons, {got['corrections']} corrections"
            )
            for name in ("votes", "comparisons", "corrected"):
                label = {"votes": "votes", "comparisons": "+ which better", "corrected": "+ corrections"}[name]
                print(line(label, got[name], split))
    if args.sweep:
        results["sweep"] = sweep(settings, split, uris, args.sweep)
    return results


def sweep(settings: Any, split: Split, uris: list[str], grid: str) -> list[dict[str, Any]]:
    """Each "threshold:weight:negative-share" of the grid with the whole protocol, on search-only answers."""
    import lore.feedback_memory as memory

    rows = []
    default_share = memory.NEGATIVE_SHARE
    print(
        "sweep: threshold weight negative-share -> per user model: d voted MRR / d untouched MRR after votes,"
        " + which better, + corrections"
    )
    for cell in grid.split(","):
        threshold, weight, share = (float(x) for x in cell.split(":"))
        memory.NEGATIVE_SHARE = share
        tuned = settings.model_copy(update={"feedback_threshold": threshold, "feedback_weight": weight})
        cells = []
        for user_model in ("strict", "lenient", "hostile"):
            got = scenario(tuned, split, user_model=user_model, chat_model=None, uris=uris)
            rows.append({"threshold": threshold, "weight": weight, "share": share, "users": user_model, **got})
            stages = [got[name] for name in ("votes", "comparisons", "corrected")]
            cells.append(
                user_model
                + " "
                + " ".join(f"{g['voted']['d_mrr']:+.3f}/{g['untouched']['d_mrr']:+.3f}" for g in stages)
            )
        print(f"  {threshold:.2f} {weight:.3f} {share:.2f} -> " + "  ".join(cells), flush=True)
    memory.NEGATIVE_SHARE = default_share
    return rows


if __name__ == "__main__":
    main()
