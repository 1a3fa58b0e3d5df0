"""Soak: mixed traffic (questions, reactions, ingests) against `lore serve --http` with a `lore worker`.

Everything real except Slack (the local fake Web API of the tests) and the pages to ingest (a local web
server): its own embedded PostgreSQL under a throwaway LORE_HOME, its own redis-server, the sample handbook
ingested first, search-only answers (no LLM). Samples the RSS of the serve and worker process trees, and at
the end checks exact counts: one answer per question, every vote as the reactions left it, every queued page
ingested, no apology, no secret in any log. Not in CI:

    .venv/bin/python bench/soak.py --minutes 10
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import procs  # noqa: E402
from harness.canaries import BOT_TOKEN, SIGNING_SECRET, find_secrets  # noqa: E402
from harness.slack_api import BOT_USER_ID, FakeSlack  # noqa: E402
from harness.slack_signing import SlackSender, app_mention  # noqa: E402
from harness.web_site import Response, WebSite  # noqa: E402

TOPICS = ["deploy", "on-call", "code review", "incident", "onboarding", "VPN", "backups", "release", "laptop"]
ANSWER_METHODS = ("chat.postMessage", "chat.startStream")


def page(site: WebSite, path: str) -> Response:
    """Every /page/N is a small distinct document (what `/lore add` queues)."""
    if path.startswith("/page/"):
        n = path.rsplit("/", 1)[-1]
        return Response(
            200,
            f"<html><head><title>Soak page {n}</title></head><body><main><h1>Soak page {n}</h1>"
            f"<p>Soak fact {n}: service s{n} is owned by team t{int(n) % 7}.</p></main></body></html>",
        )
    if path == "/robots.txt":
        return Response(200, "User-agent: *\nAllow: /\n", "text/plain")
    return Response(404, "not found", "text/plain")


def tree_rss_mb(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 1e6
    except psutil.Error:
        return float("nan")


class Votes:
    """What the reactions sent must leave in `votes`: per (message, user) the latest reaction still present."""

    def __init__(self) -> None:
        self.marks: dict[tuple[str, str], dict[int, tuple[bool, int]]] = {}

    def apply(self, message_ts: str, user: str, value: int, added: bool, clock: int) -> None:
        self.marks.setdefault((message_ts, user), {})[value] = (added, clock)

    def present(self, message_ts: str, user: str, value: int) -> bool:
        return self.marks.get((message_ts, user), {}).get(value, (False, 0))[0]

    def expected(self) -> dict[tuple[str, str], int]:
        out = {}
        for key, kinds in self.marks.items():
            live = [(clock, value) for value, (added, clock) in kinds.items() if added]
            if live:
                out[key] = max(live)[1]
        return out


def run(minutes: float, *, question_rate: float, reaction_rate: float, ingest_every_s: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="lore-soak-"))
    fake = FakeSlack().start()
    pages = WebSite(page).start()
    redis = procs.RedisServer(work / "redis").start()
    env = procs.clean_env(
        LORE_HOME=str(work / "home"), REDIS_URL=redis.url, SLACK_API_URL=fake.url, SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET, LORE_CRAWL_DELAY="0", LORE_SLACK_STREAMING="false",
    )  # fmt: skip
    env = {k: v for k, v in env.items() if k not in ("DATABASE_URL",)}
    services: list[procs.Service] = []
    try:
        subprocess.run([*procs.LORE, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=300)
        seeded = subprocess.run([*procs.LORE, "ingest", "--json", str(REPO / "examples")], env=env,
                                capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
        seed_docs = json.loads(seeded.stdout)["documents_added"]
        db_url = subprocess.run([*procs.LORE, "db", "url"], env=env, capture_output=True, text=True, check=True,
                                timeout=60).stdout.strip()  # fmt: skip
        worker = procs.worker(env, work / "worker.log")
        services.append(worker)
        serve, url = procs.serve_http(env, work / "serve.log")
        services.append(serve)
        procs.wait_until(lambda: " ready." in worker.output(), timeout=120, what="the worker", interval=0.5)
        sender = SlackSender(url, SIGNING_SECRET, timeout=30)
        rng = random.Random(7)
        clock = itertools.count(1)
        questions: list[str] = []
        votes = Votes()
        reactions = 0
        queued: list[str] = []
        statuses: dict[int, int] = {}
        samples: list[tuple[float, float, float]] = []
        lock = threading.Lock()

        def status(code: int) -> None:
            with lock:
                statuses[code] = statuses.get(code, 0) + 1

        def ask() -> None:
            n = len(questions)
            ts = f"1700000000.{n:06d}"
            questions.append(ts)
            topic = TOPICS[n % len(TOPICS)]
            status(sender.event(app_mention(f"<@{BOT_USER_ID}> what is our {topic} policy? ({n})", ts=ts)).status_code)

        def answered_messages_all() -> list[str]:
            return [m["ts"] for ts in list(questions) for m in fake.replies.get(("C0GENERAL", ts), [])]

        def answered_messages() -> list[str]:
            return [m["ts"] for ts in questions[:-5] for m in fake.replies.get(("C0GENERAL", ts), [])][-200:]

        def react() -> None:
            nonlocal reactions
            messages = answered_messages()
            if not messages:
                return
            message_ts, user = rng.choice(messages), f"U{rng.randrange(25):03d}"
            value = rng.choice([1, -1])
            added = not votes.present(message_ts, user, value)  # a reaction on the message is taken back
            tick = next(clock)
            event = {
                "type": "reaction_added" if added else "reaction_removed",
                "user": user,
                "reaction": "+1" if value == 1 else "-1",
                "item": {"type": "message", "channel": "C0GENERAL", "ts": message_ts},
                "item_user": BOT_USER_ID,
                "event_ts": f"1800000000.{tick:06d}",
            }
            votes.apply(message_ts, user, value, added, tick)
            reactions += 1
            status(sender.event(event).status_code)

        def ingest() -> None:
            page = pages.url(f"/page/{len(queued)}")
            queued.append(page)
            status(sender.command("/lore", f"add {page}", response_url=fake.url + "respond").status_code)

        # Warm-up (not measured): the answer processes and the worker load the embedder on first use.
        ingest()
        for _ in range(3):
            ask()
        procs.wait_until(lambda: len(answered_messages_all()) >= 3, timeout=300, what="warm-up answers", interval=1)
        started = time.monotonic()
        end = started + minutes * 60
        next_sample = started
        next_ingest = started
        pool = ThreadPoolExecutor(4)
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - started, tree_rss_mb(serve.process.pid), tree_rss_mb(worker.process.pid)))
                next_sample += 10
            if now >= next_ingest:
                pool.submit(ingest)
                next_ingest += ingest_every_s
            if rng.random() < question_rate / (question_rate + reaction_rate):
                pool.submit(ask)
            else:
                react()
            time.sleep(1 / (question_rate + reaction_rate))
        pool.shutdown(wait=True)
        sent_at = time.monotonic()

        # Drain: every question answered, every vote recorded, every page ingested.
        def answers_per_question() -> dict[str, int]:
            counts = {ts: 0 for ts in questions}
            for method in ANSWER_METHODS:
                for call in fake.calls_to(method):
                    if call.get("thread_ts") in counts:
                        counts[call["thread_ts"]] += 1
            return counts

        def db_state() -> tuple[dict[tuple[str, str], int], int, int, int]:
            with psycopg.connect(db_url) as conn:
                rows = conn.execute(
                    "SELECT a.message_ts, v.user_id, v.value FROM votes v JOIN answers a ON a.id = v.answer_id"
                ).fetchall()
                answers = conn.execute("SELECT count(*) FROM answers").fetchone()[0]
                pages_in = conn.execute("SELECT count(*) FROM documents WHERE uri LIKE %s",
                                        (pages.url("/page/%"),)).fetchone()[0]  # fmt: skip
                jobs_done = conn.execute("SELECT count(*) FROM ingest_jobs WHERE status = 'done'").fetchone()[0]
            return {(m, u): v for m, u, v in rows}, answers, pages_in, jobs_done

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            got_votes, answers, pages_in, jobs_done = db_state()
            if (all(c >= 1 for c in answers_per_question().values()) and got_votes == votes.expected()
                    and pages_in == len(queued) and answers >= len(questions)):  # fmt: skip
                break
            time.sleep(2)
        drain_s = time.monotonic() - sent_at
        time.sleep(3)
        got_votes, answers, pages_in, jobs_done = db_state()
        per_question = answers_per_question()
        texts = json.dumps([c.params for c in fake.calls])
        serve_rss = [s[1] for s in samples]
        worker_rss = [s[2] for s in samples]
        warm = max(1, len(samples) // 5)
        logs = serve.output() + worker.output()
        result = {
            "minutes": minutes,
            "questions": len(questions),
            "answers_rows": answers,
            "questions_unanswered": sum(1 for c in per_question.values() if c == 0),
            "questions_answered_twice": sum(1 for c in per_question.values() if c > 1),
            "reactions": reactions,
            "votes_expected": len(votes.expected()),
            "votes_wrong_or_lost": sum(1 for k, v in votes.expected().items() if got_votes.get(k) != v),
            "votes_extra": sum(1 for k in got_votes if k not in votes.expected()),
            "ingests_queued": len(queued),
            "pages_ingested": pages_in,
            "ingest_jobs_done": jobs_done,
            "seed_documents": seed_docs,
            "http_status": statuses,
            "apologies": texts.count("Sorry"),
            "log_errors": sum(1 for line in logs.splitlines() if "level=error" in line or "Traceback" in line),
            "secrets_in_logs": len(find_secrets(logs)),
            "drain_s": round(drain_s, 1),
            "rss_serve_mb_first_fifth": round(statistics.median(serve_rss[:warm]), 1),
            "rss_serve_mb_last_fifth": round(statistics.median(serve_rss[-warm:]), 1),
            "rss_worker_mb_first_fifth": round(statistics.median(worker_rss[:warm]), 1),
            "rss_worker_mb_last_fifth": round(statistics.median(worker_rss[-warm:]), 1),
            "rss_samples": [[round(t), round(a), round(b)] for t, a, b in samples],
        }
        (work / "result.json").write_text(json.dumps(result, indent=2))
        return result
    finally:
        for service in services:
            service.stop()
        redis.__exit__()
        fake.stop()
        pages.stop()
        subprocess.run([*procs.LORE, "db", "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(work / "home", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--question-rate", type=float, default=1.0, help="questions per second")
    parser.add_argument("--reaction-rate", type=float, default=2.0, help="reactions per second")
    parser.add_argument("--ingest-every", type=float, default=15.0, help="seconds between /lore add")
    args = parser.parse_args()
    result = run(args.minutes, question_rate=args.question_rate, reaction_rate=args.reaction_rate,
                 ingest_every_s=args.ingest_every)  # fmt: skip
    print(json.dumps({k: v for k, v in result.items() if k != "rss_samples"}, indent=2))
    growth = result["rss_serve_mb_last_fifth"] / result["rss_serve_mb_first_fifth"] - 1
    print(f"serve RSS {result['rss_serve_mb_first_fifth']} MB -> {result['rss_serve_mb_last_fifth']} MB "
          f"({growth:+.1%}, anchor: first fifth of the run)")  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
