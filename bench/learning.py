"""Learning from feedback: does voting on rephrasings improve retrieval of the original questions?

Protocol (issue 10): a knowledge base of real documentation (60 pages of the Python 3.11 library docs from
/usr/share/doc/python3.11/html, ingested with Lore's own pipeline), 42 questions with a gold page, split in
two. Simulated users ask two rephrasings of each part-A question through the agent (`lore.agent.answer_question`,
the function `lore ask` runs; no chat model, so answers are search-only and cite sources in retrieval order)
and vote 👍 when the first citation is the gold page, 👎 otherwise. Then, in the same run, MRR@10 and
recall@5 (by page) of hybrid search on the ORIGINAL wordings: part A (voted on) and part B (untouched), before
feedback (the anchor), after the votes, and after the 👎 voters also left a correction naming the right page.
Finally a sweep of the feedback-memory threshold and weight on the same data.

    .venv/bin/python bench/learning.py [--docs /usr/share/doc/python3.11/html/library]
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
    (
        "How do I serialize a Python dict to a JSON string?",
        ("convert a dictionary into JSON text", "dump an object as JSON"),
        "json",
    ),
    (
        "How can I save arbitrary Python objects to a file and load them back later?",
        ("persist python objects to disk with object serialization", "store an object in a binary file and restore it"),
        "pickle",
    ),
    (
        "How do I read rows from a CSV file?",
        ("parse a comma separated values file line by line", "load spreadsheet rows from a .csv"),
        "csv",
    ),
    (
        "How do I run SQL queries against a local database file?",
        ("use an embedded SQL database from python", "execute SQL statements on a file-based database"),
        "sqlite3",
    ),
    (
        "How do I get the difference between two dates in days?",
        ("compute how many days there are between two calendar dates", "subtract dates to get the elapsed days"),
        "datetime",
    ),
    (
        "How do I pause my program for a few seconds?",
        ("make the script wait 5 seconds", "delay execution for some time"),
        "time",
    ),
    (
        "How can I print a calendar for a given month?",
        ("show a month's calendar as text", "display the days of a month in a grid"),
        "calendar",
    ),
    (
        "How do I convert a time to another time zone using the IANA database?",
        ("handle time zones like Europe/Paris", "attach a named timezone to a datetime"),
        "zoneinfo",
    ),
    (
        "How do I join path components in an object-oriented way?",
        ("build file system paths with objects and the / operator", "use path objects instead of strings"),
        "pathlib",
    ),
    (
        "How do I find all files matching a wildcard pattern like *.txt?",
        ("list files whose names match *.py in a folder", "expand shell-style wildcards to file names"),
        "glob",
    ),
    (
        "How do I copy a whole directory tree?",
        ("recursively copy a folder and its contents", "duplicate a directory with all its files"),
        "shutil",
    ),
    (
        "How do I create a temporary file that is deleted automatically?",
        ("make a scratch file that goes away when closed", "create a secure temporary directory"),
        "tempfile",
    ),
    ("How do I extract files from a ZIP archive?", ("unpack a .zip file", "read the members of a zip file"), "zipfile"),
    (
        "How do I create a .tar.gz archive?",
        ("bundle files into a tarball", "read the contents of a tar archive"),
        "tarfile",
    ),
    ("How do I compress data with gzip?", ("write a .gz compressed file", "open gzip-compressed text"), "gzip"),
    (
        "How do I check whether a string matches a regular expression?",
        ("pattern match text with a regex", "search for a regex in a string"),
        "re",
    ),
    (
        "How do I wrap long text to a fixed width?",
        ("break a paragraph into lines of 70 characters", "dedent and fill text"),
        "textwrap",
    ),
    (
        "How do I compute the differences between two lists of lines, like diff?",
        ("compare two texts and show a unified diff", "ratio of similarity between two strings"),
        "difflib",
    ),
    (
        "How do I count how many times each item appears in a list?",
        ("tally the occurrences of elements", "frequency counter of words"),
        "collections",
    ),
    (
        "How do I get the n smallest items from a list efficiently with a priority queue?",
        ("min-heap operations", "push and pop items from a heap"),
        "heapq",
    ),
    (
        "How do I insert into a sorted list while keeping it sorted?",
        ("binary search for an insertion point", "find the position in a sorted sequence"),
        "bisect",
    ),
    (
        "How do I generate all permutations or combinations of a list?",
        ("every ordering of some items", "cartesian product of iterables"),
        "itertools",
    ),
    (
        "How do I cache the results of an expensive function?",
        ("memoize function calls", "least recently used cache decorator"),
        "functools",
    ),
    ("How do I pick a random element from a list?", ("choose an item at random", "shuffle a list randomly"), "random"),
    (
        "How do I generate a secure random token for a password reset link?",
        ("cryptographically strong random string", "make an unguessable URL-safe token"),
        "secrets",
    ),
    (
        "How do I compute the mean and median of a list of numbers?",
        ("average and middle value of data", "standard deviation of a sample"),
        "statistics",
    ),
    (
        "How do I do exact decimal arithmetic for money?",
        ("avoid floating point rounding errors with decimals", "fixed precision decimal numbers"),
        "decimal",
    ),
    (
        "How do I run a function in a separate thread?",
        ("start a background thread", "use a lock between threads"),
        "threading",
    ),
    (
        "How do I run an external command and capture its output?",
        ("execute a shell program and get its stdout", "spawn a child process"),
        "subprocess",
    ),
    (
        "How do I parse command-line arguments?",
        ("define CLI options and flags for my script", "read a --verbose flag from argv"),
        "argparse",
    ),
    (
        "How do I write log messages to a file with levels?",
        ("configure the logging output format", "log warnings and errors"),
        "logging",
    ),
    (
        "How do I compute the SHA-256 hash of a file?",
        ("get an md5 digest of bytes", "secure hash of some data"),
        "hashlib",
    ),
    ("How do I encode binary data as base64?", ("convert bytes to base64 text", "decode a base64 string"), "base64"),
    ("How do I generate a unique identifier?", ("create a random UUID", "make a universally unique id"), "uuid"),
    (
        "How do I make a deep copy of a nested object?",
        ("clone a list of lists without sharing", "copy an object recursively"),
        "copy",
    ),
    ("How do I define a set of named constants?", ("create an enumeration class", "enum members with values"), "enum"),
    (
        "How do I create a class that mainly stores data without writing __init__?",
        ("auto-generate init and repr for a data class", "data class fields with defaults"),
        "dataclasses",
    ),
    (
        "How do I write a context manager with a generator?",
        ("use the with statement for my own resource", "contextmanager decorator"),
        "contextlib",
    ),
    (
        "How do I measure how long a small code snippet takes to run?",
        ("time a snippet many times", "benchmark a one-liner"),
        "timeit",
    ),
    (
        "How do I split a URL into its parts and parse the query string?",
        ("extract the host and query parameters from a URL", "urlencode a dict"),
        "urllib.parse",
    ),
    (
        "How do I share work between producer and consumer threads safely?",
        ("thread-safe FIFO queue", "blocking queue get and put"),
        "queue",
    ),
    (
        "How do I pretty-print a nested data structure?",
        ("print a dict nicely indented", "readable output of large lists"),
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
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="lore-bench-learning-"))
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
    pages = [args.docs / f"{name}.html" for name in GOLD_PAGES + DISTRACTORS]
    missing = [str(p) for p in pages if not p.exists()]
    if missing:
        raise SystemExit(f"documentation pages missing: {missing[:3]} (install python3.11-doc)")
    started = time.perf_counter()
    report = ingest_sources(settings, [str(p) for p in pages])
    ingest_s = time.perf_counter() - started
    print(
        f"knowledge base: {len(pages)} pages, {report.as_json()['chunks_added']} chunks, ingested in {ingest_s:.0f} s"
    )

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

    from lore.db import raw_connection

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
        for threshold in (0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
            for weight in (0.01, 0.02, 0.03, 0.05):
                tuned = settings.model_copy(update={"feedback_threshold": threshold, "feedback_weight": weight})
                a, b = metrics(tuned, part_a), metrics(tuned, part_b)
                print(
                    f"  {threshold:.2f} {weight:.2f} -> {a['mrr@10'] - before_a['mrr@10']:+.3f} "
                    f"{b['mrr@10'] - before_b['mrr@10']:+.3f}"
                )
    stop_embedded(settings)
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
