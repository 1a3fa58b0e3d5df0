"""Benchmark: how fast `lore serve --http` acknowledges Slack events while a slow model answers them.

Signed `app_mention` events at 100 requests/s for 30 s (plus Slack-style retries of every 20th) against a real
`lore serve --http` process whose chat model is a local OpenAI-compatible fake that takes 0.5 s per answer.
Reports p50/p99 ack latency, timeouts (Slack gives up after 3 s), and whether every event was answered exactly
once (answers counted at the fake Slack Web API). The anchor, measured in the same run against the same server,
is the ack latency of Slack's `url_verification` request: HTTP, signature check and Bolt with no listener.

    .venv/bin/python bench/slack_ack.py [--rate 100] [--seconds 30] [--model-delay 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.bench_env import isolate, migrated_with_freeze_page, percentile  # noqa: E402

HOME = isolate(Path(tempfile.mkdtemp(prefix="lore-bench-ack-")))

import httpx  # noqa: E402

from bench import loadgen  # noqa: E402
from harness.local_server import free_port  # noqa: E402
from harness.openai_server import FakeOpenAI  # noqa: E402
from harness.slack_api import BOT_USER_ID, FakeSlack  # noqa: E402
from harness.slack_signing import app_mention, event_envelope  # noqa: E402
from lore.config import get_settings  # noqa: E402

SECRET = "bench-signing-secret"
SLACK_TIMEOUT_S = 3.0


def fire(
    port: int, bodies: list[tuple[bytes, dict[str, str]]], rate: float
) -> tuple[list[float], int, Counter[int | str]]:
    """Send the bodies at `rate` per second (pre-signed, keep-alive; bench/loadgen.py); return ack latencies
    (s), timeouts and status codes."""
    requests = [loadgen.signed_request("127.0.0.1", port, body, SECRET, extra_headers=extra) for body, extra in bodies]
    results = loadgen.send("127.0.0.1", port, requests, rate=rate, connections=400)
    return results.latencies, results.timeouts, results.statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--model-delay", type=float, default=0.5)
    parser.add_argument("--drain", type=float, default=600.0, help="seconds to wait for every answer")
    args = parser.parse_args()

    settings = get_settings()
    migrated_with_freeze_page(settings)
    port = free_port()
    with FakeSlack() as slack, FakeOpenAI() as model:
        model.responder = lambda body: "The deploy freeze runs from December 20 to January 3 [1]."
        model.delay(args.model_delay, times=10**9)
        env = {
            **os.environ,
            "SLACK_API_URL": slack.url,
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SECRET,
            "OPENAI_API_KEY": "sk-bench-not-a-real-key",
            "OPENAI_BASE_URL": model.url,
            "LORE_CHAT_MODEL": "fake-model",
            "LORE_AGENT": "chain",
            "LORE_HOST": "127.0.0.1",
            "LORE_PORT": str(port),
            "LORE_BOT_THREADS": "12",  # 2 processes x 12: within the embedded server's 100 connections
            "LORE_LOG_LEVEL": "WARNING",
        }
        server = subprocess.Popen([sys.executable, "-m", "lore.cli", "serve", "--http"], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("lore serve --http did not start")
                time.sleep(0.2)

            # Warm up: one answered question loads the embedder in the server, as in steady operation.
            warm = event_envelope(app_mention(f"<@{BOT_USER_ID}> warm up?", ts="1500000000.000001"))
            fire(port, [(json.dumps(warm).encode(), {})], 1)
            warm_deadline = time.monotonic() + 300
            while not slack.calls_to("chat.stopStream") and not slack.calls_to("chat.postMessage"):
                if time.monotonic() > warm_deadline or server.poll() is not None:
                    raise SystemExit(f"the warm-up question was not answered: {slack.methods()}")
                time.sleep(0.1)
            print(f"warm-up answered: {slack.methods()}", flush=True)

            # Anchor: url_verification at the same rate for 3 s.
            challenge = json.dumps({"token": "x", "challenge": "c", "type": "url_verification"}).encode()
            anchor, anchor_timeouts, _ = fire(port, [(challenge, {})] * int(args.rate * 3), args.rate)

            # The load: unique mentions, every 20th also delivered again as a Slack retry.
            total = int(args.rate * args.seconds)
            bodies: list[tuple[bytes, dict[str, str]]] = []
            threads: list[str] = []
            for i in range(total):
                ts = f"1600000000.{i:06d}"
                threads.append(ts)
                envelope = event_envelope(app_mention(f"<@{BOT_USER_ID}> when is the deploy freeze? #{i}", ts=ts))
                body = json.dumps(envelope).encode()
                bodies.append((body, {}))
                if i % 20 == 0:
                    bodies.append((body, {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "timeout"}))
            sent_at = time.monotonic()
            latencies, timeouts, statuses = fire(port, bodies, args.rate * len(bodies) / total)
            send_s = time.monotonic() - sent_at

            def answered() -> Counter[str]:
                posts = slack.calls_to("chat.postMessage") + slack.calls_to("chat.startStream")
                return Counter(str(p.get("thread_ts")) for p in posts if str(p.get("thread_ts")).startswith("16"))

            drain_deadline = time.monotonic() + args.drain
            while len(answered()) < total and time.monotonic() < drain_deadline:
                time.sleep(1)
            drained_s = time.monotonic() - sent_at
            counts = answered()
            apologies = sum(1 for p in slack.calls_to("chat.postMessage") if "Sorry" in str(p.get("text")))
        finally:
            server.terminate()
            server.wait(30)
            from lore.db import dispose_engines, stop_embedded

            dispose_engines()
            stop_embedded(settings)
            shutil.rmtree(HOME, ignore_errors=True)

    twice = sum(1 for ts in threads if counts.get(ts, 0) > 1)
    missing = sum(1 for ts in threads if counts.get(ts, 0) == 0)
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    a50, a99 = percentile(anchor, 0.5) * 1000, percentile(anchor, 0.99) * 1000
    print(f"requests       {len(bodies)} ({total} events + {len(bodies) - total} retries) in {send_s:.1f} s")
    print(
        f"ack latency    p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {max(latencies) * 1000:.1f} ms  "
        f"mean {statistics.mean(latencies) * 1000:.1f} ms"
    )
    print(f"anchor         url_verification p50 {a50:.1f} ms  p99 {a99:.1f} ms (timeouts {anchor_timeouts})")
    print(f"ratio          p50 {p50 / a50:.2f}x  p99 {p99 / a99:.2f}x the anchor")
    late = sum(1 for value in latencies if value > SLACK_TIMEOUT_S)
    print(
        f"timeouts       {timeouts} client timeouts, {late} acks later than Slack's {SLACK_TIMEOUT_S:.0f} s; "
        f"statuses {dict(statuses)}"
    )
    print(
        f"answered       {total - missing}/{total} threads, {twice} answered twice, {missing} missing, "
        f"{apologies} apologies; all answered {drained_s:.0f} s after the load began "
        f"(model delay {args.model_delay} s per answer)"
    )


if __name__ == "__main__":
    main()
