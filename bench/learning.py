"""Learning from feedback: does voting on rephrasings improve retrieval of the original questions?

Protocol (issue 10): a knowledge base of real documentation (60 pages of the Python 3.11 library docs from
/usr/share/doc/python3.11/html, ingested with Lore's own pipeline), 42 questions with a gold page, split in
two. Simulated users ask two rephrasings of each part-A question through the agent (`lore.agent.answer_question`,
the function `lore ask` runs; no chat model, so answers are search-only and cite sources in retrieval order)
and vote 👍 when the first citation is the gold page, 👎 otherwise. Then, in the same run, MRR@10 and
recall@5 (by page) of hybrid search on the ORIGINAL wordings: part A (voted on) and part B (untouched), before
feedback (the anchor), after the votes, and after the 👎 voters also left a correction naming the right page.
Finally a sweep of the feedback-memory threshold and weight on the same data.

    .venv/bin/python bench/learning.py [--docs /usr/share/doc/python3.11/html/library] [--home /tmp/lore-learning]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOLD_PAGES = [
    "json",
    "pickle",
    "csv",
    "sqlite3",
    "datetime",
    "time",
    "calendar",
    "zoneinfo",
    "pathlib",
    "glob",
    "shutil",
    "tempfile",
    "zipfile",
    "tarfile",
    "gzip",
    "re",
    "textwrap",
    "difflib",
    "collections",
    "heapq",
    "bisect",
    "itertools",
    "functools",
    "random",
    "secrets",
    "statistics",
    "decimal",
    "threading",
    "subprocess",
    "argparse",
    "logging",
    "hashlib",
    "base64",
    "uuid",
    "copy",
    "enum",
    "dataclasses",
    "contextlib",
    "timeit",
    "urllib.parse",
    "queue",
    "pprint",
]
DISTRACTORS = [
    "marshal",
    "shelve",
    "os.path",
    "fnmatch",
    "bz2",
    "lzma",
    "zlib",
    "string",
    "operator",
    "math",
    "fractions",
    "hmac",
    "getopt",
    "binascii",
    "reprlib",
    "graphlib",
    "weakref",
    "array",
]

# (original wording, two rephrasings asked by users, gold page)
QUESTIONS: list[tuple[str, tuple[str, str], str]] = [
    # Everyday wordings that rarely name the module: retrieval has to work for them.
    (
        "How do I turn a dictionary into a string that a JavaScript frontend can read?",
        ("convert a dict to JSON text", "encode python data for a web API response"),
        "json",
    ),
    (
        "How can I save any Python object to a file and get it back later?",
        ("persist python objects to disk with serialization", "store an object in a binary file and restore it"),
        "pickle",
    ),
    (
        "How do I read a spreadsheet exported from Excel as rows?",
        ("parse a comma separated values file line by line", "load rows from a .csv export"),
        "csv",
    ),
    (
        "How do I store data in a small database without running a server?",
        ("embedded SQL database in a single file", "run SQL queries on a local database file"),
        "sqlite3",
    ),
    (
        "How many days are there between two given days of the year?",
        ("subtract two dates to get the number of days", "difference between two dates as a timedelta"),
        "datetime",
    ),
    (
        "How do I make my program wait for a while before continuing?",
        ("sleep for a few seconds", "pause execution for some time"),
        "time",
    ),
    (
        "How can I figure out which weekday the first of a month falls on?",
        ("weekday of the first day of a month and number of days in it", "print a month as a text calendar"),
        "calendar",
    ),
    (
        "How do I show a meeting time in the local time of colleagues in Tokyo?",
        ("convert a datetime to the Asia/Tokyo time zone", "IANA time zone database support"),
        "zoneinfo",
    ),
    (
        "How do I get a file's extension and its parent folder?",
        ("suffix and parent of a path object", "object-oriented filesystem paths"),
        "pathlib",
    ),
    (
        "How do I list all the text files in a folder?",
        ("find files matching *.txt with a wildcard", "unix style pathname pattern expansion"),
        "glob",
    ),
    (
        "How do I move a folder somewhere else, including everything in it?",
        ("recursively copy or move a directory tree", "high-level file operations like copytree"),
        "shutil",
    ),
    (
        "Where should my script put scratch files that nobody else can read?",
        ("create a temporary file securely", "temporary directory removed automatically"),
        "tempfile",
    ),
    (
        "How do I bundle some files into an archive Windows users can open?",
        ("create a .zip archive", "write files into a ZIP file"),
        "zipfile",
    ),
    (
        "How do I unpack a source release downloaded as .tgz?",
        ("extract a tar.gz archive", "read members of a tar file"),
        "tarfile",
    ),
    (
        "How do I read a log file that was compressed by logrotate?",
        ("open a .gz file as text", "decompress gzip data"),
        "gzip",
    ),
    (
        "How do I find every email address in a block of text?",
        ("find all matches of a regular expression", "regex search and findall on a string"),
        "re",
    ),
    (
        "How do I remove the common leading whitespace from a multi-line string?",
        ("dedent a block of text", "wrap and fill paragraphs to a width"),
        "textwrap",
    ),
    (
        "How can I suggest the closest match when a user mistypes a command name?",
        ("get close matches for a misspelled word", "similarity ratio between two strings"),
        "difflib",
    ),
    (
        "What container lets me append and pop from both ends quickly?",
        ("double-ended queue", "deque with maxlen"),
        "collections",
    ),
    (
        "How do I keep track of the top 10 scores as new ones stream in?",
        ("n largest items with a heap", "priority queue with heappush and heappop"),
        "heapq",
    ),
    (
        "How do I map a numeric score to a letter grade using breakpoints?",
        ("find an insertion point in a sorted list", "binary search over sorted breakpoints"),
        "bisect",
    ),
    (
        "How do I loop over a list in chunks of fixed size or chain several lists together?",
        ("chain iterables and batch them", "iterator building blocks like chain and islice"),
        "itertools",
    ),
    (
        "How do I fix some arguments of a function to make a new function?",
        ("partial function application", "higher-order functions and decorators like partial"),
        "functools",
    ),
    (
        "How do I get a reproducible sequence of pseudo-random numbers with a seed?",
        ("seed the random number generator", "generate pseudo-random numbers"),
        "random",
    ),
    (
        "How do I generate a password for a new user account safely?",
        ("cryptographically secure random token", "token_urlsafe for a reset link"),
        "secrets",
    ),
    (
        "How do I find the most common value and the spread of some measurements?",
        ("mode and standard deviation of data", "mean median and variance"),
        "statistics",
    ),
    (
        "Why does 0.1 + 0.2 not equal 0.3 and how do I get exact cents?",
        ("exact decimal arithmetic for money", "fixed point decimal numbers with rounding"),
        "decimal",
    ),
    (
        "How do I download several files at the same time without blocking?",
        ("run a function in a separate thread", "start threads and join them"),
        "threading",
    ),
    (
        "How do I call git from my Python script and check if it failed?",
        ("run an external command and check its return code", "capture the output of a child process"),
        "subprocess",
    ),
    (
        "How do I make my script show a --help message listing its options?",
        ("parse command-line arguments and options", "define flags for a command line tool"),
        "argparse",
    ),
    (
        "How do I send diagnostic messages to a file instead of print statements?",
        ("log to a file with levels", "configure a logger handler and format"),
        "logging",
    ),
    (
        "How do I verify that a downloaded file is not corrupted using its checksum?",
        ("compute the SHA-256 digest of a file", "secure hashes and message digests"),
        "hashlib",
    ),
    (
        "How do I embed an image's bytes inside a JSON document as text?",
        ("encode binary data as base64", "convert bytes to ASCII text and back"),
        "base64",
    ),
    (
        "How do I give every record an identifier that will not collide across machines?",
        ("generate a random UUID", "universally unique identifiers"),
        "uuid",
    ),
    (
        "Why does changing my copied list also change the original, and how do I avoid it?",
        ("deep copy versus shallow copy", "copy a nested object recursively"),
        "copy",
    ),
    (
        "How do I represent a fixed set of states like RED, GREEN, BLUE?",
        ("define an enumeration", "symbolic names bound to constant values"),
        "enum",
    ),
    (
        "How can I avoid writing boilerplate __init__ and __eq__ for simple record classes?",
        ("generate init and repr automatically for a class", "data class with fields and defaults"),
        "dataclasses",
    ),
    (
        "How do I make sure a resource is cleaned up even if an exception happens, using with?",
        ("write my own context manager with a generator", "utilities for with-statement contexts"),
        "contextlib",
    ),
    (
        "Which of two implementations is faster for a tiny piece of code?",
        ("measure execution time of small code snippets", "time a statement many times"),
        "timeit",
    ),
    (
        "How do I percent-encode special characters for use in a web address?",
        ("quote and unquote URL components", "split a URL and parse its query string"),
        "urllib.parse",
    ),
    (
        "How do I pass tasks from one thread to worker threads safely?",
        ("thread-safe FIFO queue", "producer consumer queue with get and put"),
        "queue",
    ),
    (
        "How can I print a large nested dictionary so it is readable?",
        ("pretty-print a data structure", "format nested data with indentation"),
        "pprint",
    ),
]


def gold_of(uri: str) -> str:
    return uri.rsplit("/", 1)[-1].removesuffix(".html")


def metrics(settings: Any, questions: list[tuple[str, tuple[str, str], str]]) -> dict[str, float]:
    """MRR@10 and recall@5 by page for the original wordings."""
    from lore.search import hybrid_search

    rr, hit5 = 0.0, 0
    for question, _, gold in questions:
        pages: list[str] = []
        for hit in hybrid_search(settings, question, k=20):
            page = gold_of(hit.uri)
            if page not in pages:
                pages.append(page)
        if gold in pages[:10]:
            rr += 1.0 / (pages.index(gold) + 1)
        hit5 += gold in pages[:5]
    return {"mrr@10": rr / len(questions), "recall@5": hit5 / len(questions)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=Path("/usr/share/doc/python3.11/html/library"))
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument(
        "--home",
        type=Path,
        help="keep the knowledge base here between runs (ingest is skipped "
        "for unchanged pages); default: a throwaway directory",
    )
    args = parser.parse_args()

    home = args.home.resolve() if args.home else Path(tempfile.mkdtemp(prefix="lore-bench-learning-"))
    for name in [n for n in os.environ if n.startswith(("SLACK_", "OPENAI_", "LORE_")) or n == "DATABASE_URL"]:
        del os.environ[name]
    os.environ.update({"LORE_HOME": str(home), "HF_HUB_OFFLINE": "1", "LORE_LOG_LEVEL": "WARNING"})

    from ingest.pipeline import ingest_sources
    from lore.agent import answer_question
    from lore.cli import upgrade_database
    from lore.config import get_settings
    from lore.db import stop_embedded
    from lore.feedback import record_critique, record_vote

    settings = get_settings()
    upgrade_database(settings)
    from lore.db import raw_connection

    with raw_connection(settings) as conn:  # a kept knowledge base starts without any feedback
        conn.execute("TRUNCATE answers RESTART IDENTITY CASCADE")
    pages = [args.docs / f"{name}.html" for name in GOLD_PAGES + DISTRACTORS]
    missing = [str(p) for p in pages if not p.exists()]
    if missing:
        raise SystemExit(f"documentation pages missing: {missing[:3]} (install python3.11-doc)")
    started = time.perf_counter()
    report = ingest_sources(settings, [str(p) for p in pages]).as_json()
    ingest_s = time.perf_counter() - started
    if report["errors"]:
        raise SystemExit(f"ingest failed: {report['errors'][:3]}")
    with raw_connection(settings) as conn:
        chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    print(f"knowledge base: {len(pages)} pages, {chunks} chunks (ingest took {ingest_s:.0f} s)")

    part_a, part_b = QUESTIONS[0::2], QUESTIONS[1::2]
    before_a, before_b = metrics(settings, part_a), metrics(settings, part_b)

    downvoted: list[tuple[int, str, str]] = []
    asked = up = 0
    for n, (_, rephrasings, gold) in enumerate(part_a):
        for m, rephrasing in enumerate(rephrasings):
            answer = answer_question(settings, rephrasing)
            assert answer.answer_id is not None
            asked += 1
            first = answer.citations[0].uri if answer.citations else ""
            user = f"U{n:02d}{m}"
            if gold_of(first) == gold:
                record_vote(settings, answer_id=answer.answer_id, user_id=user, value=1, via="reaction")
                up += 1
            else:
                record_vote(settings, answer_id=answer.answer_id, user_id=user, value=-1, via="reaction")
                gold_uri = next(p.resolve().as_uri() for p in pages if p.stem == gold)
                downvoted.append((answer.answer_id, user, gold_uri))
    after_a, after_b = metrics(settings, part_a), metrics(settings, part_b)

    with raw_connection(settings) as conn:
        uris = {row[0] for row in conn.execute("SELECT uri FROM documents").fetchall()}
    for answer_id, user, gold_uri in downvoted:
        # The user names the right page in the correction, as they would paste a link.
        uri = next((u for u in uris if gold_of(u) == gold_of(gold_uri)), gold_uri)
        record_critique(
            settings, answer_id=answer_id, user_id=user, critique="wrong page", correction=f"The right page is {uri}"
        )
    corr_a, corr_b = metrics(settings, part_a), metrics(settings, part_b)

    def line(name: str, a: dict[str, float], b: dict[str, float]) -> str:
        return (
            f"{name:<28} A: MRR@10 {a['mrr@10']:.3f}  R@5 {a['recall@5']:.3f}   "
            f"B: MRR@10 {b['mrr@10']:.3f}  R@5 {b['recall@5']:.3f}"
        )

    print(
        f"simulated users: {asked} asks of part A rephrasings, {up} up / {asked - up} down, "
        f"{len(downvoted)} corrections"
    )
    print(f"threshold {settings.feedback_threshold}, weight {settings.feedback_weight}")
    print(line("before (anchor)", before_a, before_b))
    print(line("after votes", after_a, after_b))
    print(line("after votes + corrections", corr_a, corr_b))
    print(
        f"lift A (votes): MRR {after_a['mrr@10'] - before_a['mrr@10']:+.3f}; "
        f"with corrections {corr_a['mrr@10'] - before_a['mrr@10']:+.3f}; "
        f"B change {corr_b['mrr@10'] - before_b['mrr@10']:+.3f}"
    )

    if not args.no_sweep:
        print("sweep (votes + corrections): threshold weight -> dMRR A, dMRR B")
        for threshold in (0.35, 0.4, 0.45, 0.5, 0.55, 0.6):
            for weight in (0.02, 0.04, 0.06, 0.08):
                tuned = settings.model_copy(update={"feedback_threshold": threshold, "feedback_weight": weight})
                a, b = metrics(tuned, part_a), metrics(tuned, part_b)
                print(
                    f"  {threshold:.2f} {weight:.2f} -> {a['mrr@10'] - before_a['mrr@10']:+.3f} "
                    f"{b['mrr@10'] - before_b['mrr@10']:+.3f}"
                )
    stop_embedded(settings)
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
