"""Search latency, A/B: another revision's lore/search.py against the working tree's, alternated in one process.

Both versions search the same knowledge base (LORE_HOME) with the same real questions, whose embeddings are computed
once beforehand, taking turns query by query for `--rounds` rounds (`turns.take_turns`, as bench/search.py does: the
order turns, and neither runs the query the other has just run), so load on a shared machine falls on both alike.
The ratio of the p50s is the figure to report (docs/benchmarks.md).

    LORE_HOME=/work/kb/pydocs .venv/bin/python bench/search_ab.py [--rev HEAD] [--mode hybrid] [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from turns import take_turns  # noqa: E402

from lore import search as current  # noqa: E402
from lore.config import Settings  # noqa: E402
from lore.eval import load_eval_set  # noqa: E402

SETS = ["fresh10_questions.jsonl", "fresh11_rephrasings.jsonl", "fresh12_questions.jsonl", "fresh13_rephrasings.jsonl"]


def load_revision(rev: str, directory: Path) -> ModuleType:
    """lore/search.py as it is at `rev`, imported as a module of its own (it imports the rest of lore as it is now)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:lore/search.py"], capture_output=True, text=True, check=True
    ).stdout
    path = directory / "search_at_revision.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("search_at_revision", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="the revision to compare the working tree with")
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    queries = [row.query for name in SETS for row in load_eval_set(ROOT / "bench" / name)]
    vectors = {q: current.embed_query(settings, q) for q in queries}
    with tempfile.TemporaryDirectory() as tmp:
        versions = {args.rev: load_revision(args.rev, Path(tmp)), "working tree": current}
        for module in versions.values():  # warm: connections, prepared statements, the word statistics
            for q in queries[:30]:
                module.search_scored(settings, q, k=10, mode=args.mode, query_embedding=vectors[q])

        def searcher(module: ModuleType) -> Callable[[int], object]:
            return lambda i: module.search_scored(
                settings, queries[i], k=10, mode=args.mode, query_embedding=vectors[queries[i]]
            )

        contenders = [(name, searcher(module)) for name, module in versions.items()]
        times: dict[str, list[float]] = {name: [] for name in versions}
        for _ in range(args.rounds):
            for name, took in take_turns(contenders, len(queries)).items():
                times[name].extend(took)
    for name, values in times.items():
        p50, p90 = statistics.median(values), statistics.quantiles(values, n=10)[-1]
        print(f"{name}: p50 {p50 * 1000:.2f} ms, p90 {p90 * 1000:.2f} ms, {len(values)} searches ({args.mode})")
    ratio = statistics.median(times["working tree"]) / statistics.median(times[args.rev])
    print(f"working tree / {args.rev}, p50: {ratio:.3f}")


if __name__ == "__main__":
    main()
