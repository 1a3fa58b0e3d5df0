"""`search` over MCP stdio against an in-process `hybrid_search`, on the same questions in the same run.

The MCP side is what a client application gets: the official MCP client starts `lore mcp --user U` as a child
process and calls the `search` tool (k=5, hybrid) over stdio; each call's time is measured at the client, so
it holds JSON-RPC framing, the pipe, argument validation, the worker thread, the permission lookup and the
result's serialisation, on top of the search itself. The anchor is `lore.search.hybrid_search` with the same
asker (a DM user; no Slack configured, so public documents), the same k and mode, in this process.

Both run the questions in turns (query by query, alternating who goes first, never the query the other has
just run), after a warm-up. Pass: MCP p50 <= 1.3 x the anchor's p50.

    cp -a /work/kb/pydocs /tmp/me-home   # the whole Python 3.11 docs, made with `lore ingest`
    .venv/bin/python bench/mcp_search.py --home /tmp/me-home [--rounds 3] [FILE.jsonl ...]

Without --home it copies /work/kb/pydocs (when /work/kb/READY exists) to a temporary directory and uses that.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.bench_env import percentile  # noqa: E402

SHARED_KB = Path("/work/kb/pydocs")
DEFAULT_QUESTIONS = [REPO / "bench" / "eval_python_docs_everyday.jsonl", REPO / "bench" / "eval_python_docs.jsonl"]
USER = "U0BENCH"
K = 5
BOUND = 1.3
WARM_UP = 10


def _home(given: Path | None) -> Path:
    if given is not None:
        return given
    if not (SHARED_KB.parent / "READY").exists():
        sys.exit(f"no --home given and {SHARED_KB.parent / 'READY'} does not exist (the shared KB is not ready)")
    home = Path(tempfile.mkdtemp(prefix="lore-mcp-bench-")) / "home"
    shutil.copytree(SHARED_KB, home, symlinks=True)
    return home


def _questions(files: list[Path]) -> list[str]:
    return [json.loads(line)["query"] for path in files for line in path.read_text().splitlines() if line.strip()]


async def _measure(home: Path, questions: list[str], rounds: int) -> dict[str, list[float]]:
    os.environ["LORE_HOME"] = str(home)
    for name in [n for n in os.environ if n.startswith(("SLACK_", "OPENAI_")) or n == "DATABASE_URL"]:
        del os.environ[name]
    from lore.config import Settings
    from lore.search import hybrid_search
    from lore.types import Asker

    settings = Settings()
    asker = Asker(user_id=USER, is_dm=True, surface="mcp")
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "lore.cli", "mcp", "--user", USER], env=dict(os.environ), cwd=REPO
    )
    n = len(questions)

    def in_process(i: int) -> Any:
        return hybrid_search(settings, questions[i], asker=asker, k=K, mode="hybrid")

    took: dict[str, list[float]] = {"in-process hybrid_search": [], "MCP stdio search": []}
    async with Client(params, read_timeout_seconds=300) as client:

        async def over_mcp(i: int) -> Any:
            result = await client.call_tool("search", {"query": questions[i], "k": K, "mode": "hybrid"})
            assert not result.is_error and len(result.structured_content["results"]) == K, result.content
            return result

        for i in range(WARM_UP):
            in_process(i % n)
            await over_mcp((i + 1) % n)
        for _ in range(rounds):
            for i in range(n):
                order = ("in-process hybrid_search", "MCP stdio search")[:: 1 if i % 2 == 0 else -1]
                for turn, name in enumerate(order):
                    query = (i + turn * n // 2) % n  # never the query the other one has just run
                    started = time.perf_counter()
                    if name.startswith("MCP"):
                        await over_mcp(query)
                    else:
                        in_process(query)
                    took[name].append((time.perf_counter() - started) * 1000)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="*", default=DEFAULT_QUESTIONS, help="JSONL with a `query` a line")
    parser.add_argument("--home", type=Path, default=None, help="a LORE_HOME holding the knowledge base (a copy)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = _home(args.home)
    questions = _questions(args.files)
    load_before = os.getloadavg()[0]
    took = anyio.run(_measure, home, questions, args.rounds)
    anchor, mcp = took["in-process hybrid_search"], took["MCP stdio search"]
    print(f"{len(questions)} questions x {args.rounds} rounds, k={K}, hybrid, knowledge base at {home}")
    print("| search | calls | p50 ms | p90 ms |\n|---|---:|---:|---:|")
    for name, values in took.items():
        print(f"| {name} | {len(values)} | {statistics.median(values):.2f} | {percentile(values, 0.9):.2f} |")
    ratio = statistics.median(mcp) / statistics.median(anchor)
    verdict = "PASS" if ratio <= BOUND else "FAIL"
    print(f"\nMCP stdio p50 - in-process p50 = {statistics.median(mcp) - statistics.median(anchor):.2f} ms")
    # Two processes take turns on each call: a loaded machine (other jobs' run queue) lengthens that hand-over.
    print(f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    print(f"MCP stdio p50 / in-process p50 = {ratio:.3f} (bound {BOUND}): {verdict}")
    sys.exit(0 if ratio <= BOUND else 1)


if __name__ == "__main__":
    main()
