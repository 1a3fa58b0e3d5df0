"""Feedback throughput: signed reaction events through `lore serve --http` -> Celery (Redis) -> PostgreSQL.

Simulated users add and remove 👍/👎 on bot answers; every event is a real signed Events API request to the
real HTTP server, which hands it to a real Celery worker over Redis, which records it in PostgreSQL. The
figure is events per second from the first request until the `votes` table holds exactly the expected
final state (checked row by row). The anchor, measured in the same run, is the same events recorded
directly with `lore.feedback.record_reaction` in one process (PostgreSQL alone, no HTTP, no broker).

    .venv/bin/python bench/feedback.py [--events 6000] [--concurrency 32] [--redis-url redis://127.0.0.1:6379/12]

Everything runs under a throwaway LORE_HOME with its own embedded PostgreSQL; the Redis database is flushed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.bench_env import isolate  # noqa: E402
from harness.local_server import free_port  # noqa: E402

SECRET = "bench-signing-secret-0123456789abcdef"
CHANNEL = "C0BENCH"
UP, DOWN = "+1", "-1"


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU time of each process and its children so far (PostgreSQL's backends are summed apart)."""
    import psutil

    out: dict[str, float] = {}
    postgres = 0.0
    for name, pid in pids.items():
        process = psutil.Process(pid)
        total = 0.0
        for p in [process, *process.children(recursive=True)]:
            times = p.cpu_times()
            total += times.user + times.system
        out[name] = total
    for p in psutil.process_iter(["name"]):
        if p.info["name"] == "postgres":
            try:
                times = p.cpu_times()
                postgres += times.user + times.system
            except psutil.Error:
                pass
    out["postgres (all backends)"] = postgres
    return out


def plan_events(n_events: int, n_answers: int, n_users: int, seed: int = 7) -> tuple[list[list[dict]], dict]:
    """Rounds of reaction events (distinct (user, answer) keys inside a round) and the final vote per key.

    The model mirrors Slack: a user's message has a set of reactions; the vote is the most recent one present.
    """
    rng = random.Random(seed)
    present: dict[tuple[int, str], dict[str, int]] = {}  # key -> reaction -> when it was added
    rounds: list[list[dict]] = []
    emitted = 0
    clock = 0
    keys = [(a, f"U{u:04d}") for a in range(n_answers) for u in range(n_users)]
    while emitted < n_events:
        batch = rng.sample(keys, min(len(keys), 500, n_events - emitted))
        events = []
        for key in batch:
            have = present.setdefault(key, {})
            reaction = rng.choice([UP, DOWN])
            added = reaction not in have  # Slack toggles: a reaction is added if absent, removed if present
            clock += 1
            if added:
                have[reaction] = clock
            else:
                have.pop(reaction, None)
            events.append({"answer": key[0], "user": key[1], "reaction": reaction, "added": added, "seq": clock})
        rounds.append(events)
        emitted += len(events)
    expected = {}
    for key, have in present.items():
        if have:
            latest = max(have, key=lambda r: have[r])
            expected[key] = 1 if latest == UP else -1
    return rounds, expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--answers", type=int, default=200)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--worker-concurrency", type=int, default=16)
    parser.add_argument("--pool", default="threads", help="Celery pool: threads (group commit) or prefork")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="lore-bench-feedback-"))
    port = free_port()
    isolate(home)
    os.environ.update(
        {
            "LORE_HOME": str(home),
            "REDIS_URL": args.redis_url,
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SECRET,
            "LORE_HOST": "127.0.0.1",
            "LORE_PORT": str(port),
            "LORE_LOG_LEVEL": "WARNING",
            "HF_HUB_OFFLINE": "1",
        }
    )
    import httpx
    import redis

    from bench import loadgen
    from harness.slack_api import FakeSlack
    from harness.slack_signing import event_envelope
    from lore.config import get_settings
    from lore.db import raw_connection, stop_embedded
    from lore.feedback import record_reaction
    from lore.migrations import upgrade_database

    redis.Redis.from_url(args.redis_url).flushdb()
    settings = get_settings()
    upgrade_database(settings)
    rounds, expected = plan_events(args.events, args.answers, args.users)
    n_events = sum(len(r) for r in rounds)

    def reset_answers() -> None:
        with raw_connection(settings) as conn:
            conn.execute("TRUNCATE answers, votes, vote_marks, slack_events RESTART IDENTITY CASCADE")
            with conn.cursor().copy("COPY answers (channel_id, message_ts, question, answer, model) FROM STDIN") as cp:
                for a in range(args.answers):
                    cp.write_row((CHANNEL, f"1700000000.{a:06d}", f"question {a}", f"answer {a}", "bench"))

    def final_votes() -> dict[tuple[int, str], int]:
        with raw_connection(settings) as conn:
            rows = conn.execute(
                "SELECT a.message_ts, v.user_id, v.value FROM votes v JOIN answers a ON a.id = v.answer_id"
            )
            return {(int(ts.split(".")[1]), user): int(value) for ts, user, value in rows.fetchall()}

    # Anchor: the same events straight into PostgreSQL, one process, no HTTP and no broker.
    reset_answers()
    started = time.perf_counter()
    for events in rounds:
        for e in events:
            record_reaction(
                settings,
                channel_id=CHANNEL,
                message_ts=f"1700000000.{e['answer']:06d}",
                user_id=e["user"],
                reaction=e["reaction"],
                added=e["added"],
                event_ts=f"1800000000.{e['seq']:06d}",
            )
    anchor_s = time.perf_counter() - started
    assert final_votes() == expected, "direct recording disagrees with the model"

    reset_answers()
    env = dict(os.environ)
    with FakeSlack() as fake:
        env["SLACK_API_URL"] = fake.url
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lore.cli",
                "worker",
                "-Q",
                "feedback",
                "-c",
                str(args.worker_concurrency),
                "--pool",
                args.pool,
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "lore.cli", "serve", "--http"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(
                        f"lore serve --http did not come up: {server.stderr.read() if server.stderr else ''}"
                    )
                time.sleep(0.2)
            time.sleep(3)  # let the worker connect
            requests = []
            for e in (e for events in rounds for e in events):
                event = {
                    "type": "reaction_added" if e["added"] else "reaction_removed",
                    "user": e["user"],
                    "reaction": e["reaction"],
                    "item": {"type": "message", "channel": CHANNEL, "ts": f"1700000000.{e['answer']:06d}"},
                    "item_user": "UBOTLORE",
                    "event_ts": f"1800000000.{e['seq']:06d}",
                }
                body = json.dumps(event_envelope(event, event_id=f"EvB{e['seq']:09d}")).encode()
                requests.append(loadgen.signed_request("127.0.0.1", port, body, SECRET))
            # All at once over keep-alive connections: arrival order does not matter, Slack's event_ts decides.
            started = time.perf_counter()
            sent = loadgen.send("127.0.0.1", port, requests, connections=args.concurrency)
            statuses = [code for code, n in sent.statuses.items() for _ in range(n)] + ["timeout"] * sent.timeouts
            sent_s = time.perf_counter() - started
            deadline = time.monotonic() + 300
            while final_votes() != expected:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            total_s = time.perf_counter() - started
            got = final_votes()
            cpu = cpu_seconds({"bench client": os.getpid(), "lore serve": server.pid, "celery worker": worker.pid})
        finally:
            for process in (server, worker):
                process.terminate()
            for process in (server, worker):
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
    stop_embedded(settings)
    shutil.rmtree(home, ignore_errors=True)

    bad = sum(1 for s in statuses if s != 200)
    exact = got == expected
    wrong = len(set(got.items()) ^ set(expected.items()))
    print(f"events: {n_events} ({args.answers} answers x {args.users} users), HTTP errors: {bad}")
    print(f"final votes exact: {exact} ({len(expected)} votes expected, {wrong} rows differ)")
    print(
        f"HTTP -> Celery -> PostgreSQL: {n_events / total_s:.0f} events/s (all sent in {sent_s:.1f} s, "
        f"recorded in {total_s:.1f} s)"
    )
    print(f"anchor, record_reaction directly in one process: {n_events / anchor_s:.0f} events/s")
    print(f"ratio: {anchor_s / total_s:.2f}x the direct single-process rate")
    print("CPU seconds over the whole run (2 cores): " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))


if __name__ == "__main__":
    main()
