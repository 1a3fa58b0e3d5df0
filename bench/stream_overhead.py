"""Benchmark: how long a model's first token takes to reach Slack's stream through `lore serve --http`.

A real `lore serve --http` process answers signed `app_mention` events one at a time; its chat model is the local
OpenAI-compatible fake with a fixed time to first token (--ttft) and a word pace, its Slack the fake Web API. For
each question: the moment the model sent its first word (recorded by the fake model) and the moment that word
reached the fake Slack in a chat.startStream/appendStream call. Reports p50/p95 of that overhead, and end to end
(event sent to first word in Slack) against the anchor measured in the same run: the model's own time to first
token plus retrieval. Goal: overhead p95 at most 150 ms.

    .venv/bin/python bench/stream_overhead.py [--questions 40] [--ttft 0.4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.bench_env import isolate, migrated_with_freeze_page, percentile  # noqa: E402

HOME = isolate(Path(tempfile.mkdtemp(prefix="lore-bench-stream-")))

import httpx  # noqa: E402

from harness.local_server import free_port  # noqa: E402
from harness.openai_server import FakeOpenAI  # noqa: E402
from harness.slack_api import BOT_USER_ID, FakeSlack  # noqa: E402
from harness.slack_signing import SlackSender, app_mention  # noqa: E402
from lore.config import get_settings  # noqa: E402

SECRET = "bench-signing-secret"
GOAL_MS = 150.0
REPLY = "The deploy freeze runs from December 20 to January 3 [1]; hotfixes need a VP's approval and a rollback plan."


class FirstWords:
    """Wraps the fake Slack's responder: when each thread's first answer text arrived (time.time())."""

    def __init__(self, slack: FakeSlack) -> None:
        self.arrived: dict[str, float] = {}
        self._streams: dict[str, str] = {}  # stream ts -> thread ts
        self._lock = threading.Lock()
        respond = slack._respond

        def recording(method: str, p: dict[str, Any]) -> dict[str, Any]:
            now = time.time()
            response = respond(method, p)
            if method in ("chat.startStream", "chat.appendStream", "chat.stopStream", "chat.postMessage"):
                chunks = p.get("chunks") or []
                if isinstance(chunks, str):
                    chunks = json.loads(chunks)
                has_text = bool(p.get("markdown_text")) or any(c.get("type") == "markdown_text" for c in chunks)
                has_text = has_text or (method == "chat.postMessage" and bool(p.get("text")))
                with self._lock:
                    if method in ("chat.startStream", "chat.postMessage"):
                        self._streams[str(response.get("ts"))] = str(p.get("thread_ts"))
                    thread = str(p.get("thread_ts") or self._streams.get(str(p.get("ts")), ""))
                    if has_text and thread and thread not in self.arrived:
                        self.arrived[thread] = now
            return response

        slack._respond = recording  # type: ignore[method-assign]


def start_server(port: int, slack: FakeSlack, model: FakeOpenAI) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SLACK_API_URL": slack.url,
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": SECRET,
        "OPENAI_API_KEY": "sk-bench-not-a-real-key",
        "OPENAI_BASE_URL": model.url,
        "LORE_CHAT_MODEL": "fake-model",
        "LORE_AGENT": "chain",
        "LORE_SLACK_STREAMING": "1",
        "LORE_HOST": "127.0.0.1",
        "LORE_PORT": str(port),
        "LORE_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen([sys.executable, "-m", "lore.cli", "serve", "--http"], env=env)
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("lore serve --http did not start")
        time.sleep(0.2)


def ask(sender: SlackSender, slack: FakeSlack, words: FirstWords, ts: str, text: str) -> float:
    """Send one mention; wait for its stream to stop; return when it was sent (time.time())."""
    sent = time.time()
    sender.event(app_mention(f"<@{BOT_USER_ID}> {text}", ts=ts))
    deadline = time.monotonic() + 300
    while not any(c.get("thread_ts") == ts for c in slack.calls_to("chat.startStream")) or ts not in words.arrived:
        if time.monotonic() > deadline:
            raise SystemExit(f"question {ts} was not answered: {slack.methods()[-10:]}")
        time.sleep(0.01)
    stop_deadline = time.monotonic() + 60
    while len(slack.calls_to("chat.stopStream")) < len(slack.calls_to("chat.startStream")):
        if time.monotonic() > stop_deadline:
            raise SystemExit(f"the stream of {ts} never stopped")
        time.sleep(0.01)
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--ttft", type=float, default=0.4, help="the model's fixed time to first token (s)")
    parser.add_argument("--word-interval", type=float, default=0.02)
    args = parser.parse_args()

    settings = get_settings()
    migrated_with_freeze_page(settings)
    port = free_port()
    overhead: list[float] = []
    end_to_end: list[float] = []
    anchor: list[float] = []
    with FakeSlack() as slack, FakeOpenAI() as model:
        words = FirstWords(slack)
        model.responder = lambda body: REPLY
        model.word_interval = args.word_interval
        model.delay(args.ttft, times=10**9)
        server = start_server(port, slack, model)
        sender = SlackSender(f"http://127.0.0.1:{port}", SECRET)
        try:
            ask(sender, slack, words, "1500000000.000001", "warm up?")  # loads the embedder, as in steady operation
            print(f"warm-up answered: {slack.methods()}", flush=True)
            for i in range(args.questions):
                before = len(model.first_word_sent)
                ts = f"1600000000.{i:06d}"
                sent = ask(sender, slack, words, ts, f"when is the deploy freeze? #{i}")
                first_word = model.first_word_sent[before]
                overhead.append(words.arrived[ts] - first_word)
                end_to_end.append(words.arrived[ts] - sent)
                anchor.append(first_word - sent)  # retrieval, the prompt and the model's own time to first token
        finally:
            sender.close()
            server.terminate()
            server.wait(30)
            from lore.db import dispose_engines, stop_embedded

            dispose_engines()
            stop_embedded(settings)
            shutil.rmtree(HOME, ignore_errors=True)

    def ms(values: list[float], q: float) -> float:
        return percentile(values, q) * 1000

    print(f"questions      {len(overhead)} (one at a time), model TTFT {args.ttft * 1000:.0f} ms")
    print(
        f"overhead       first token -> Slack's stream: p50 {ms(overhead, 0.5):.1f} ms  p95 {ms(overhead, 0.95):.1f} ms"
    )
    print(f"anchor         event -> model's first token:  p50 {ms(anchor, 0.5):.1f} ms  p95 {ms(anchor, 0.95):.1f} ms")
    e50, e95 = ms(end_to_end, 0.5), ms(end_to_end, 0.95)
    print(f"end to end     event -> first word in Slack:  p50 {e50:.1f} ms  p95 {e95:.1f} ms")
    print(f"ratio          end to end / anchor: p50 {percentile(end_to_end, 0.5) / percentile(anchor, 0.5):.2f}x")
    verdict = "met" if ms(overhead, 0.95) <= GOAL_MS else "MISSED"
    print(f"goal           overhead p95 <= {GOAL_MS:.0f} ms: {verdict}")
    if verdict != "met":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
