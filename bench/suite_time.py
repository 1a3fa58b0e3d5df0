"""The test suite's time with the ONNX embedder (today) against the old sentence-transformers path, in one run.

Issue 25 asks for the suite's time before and after the embedder left torch. Checking out the old code would also
change the tests, so the old path is put back instead: a `sitecustomize` module (on PYTHONPATH, so every
subprocess the tests start gets it too: CLI commands, workers, answer processes) replaces lore.embeddings'
LocalEmbedder with sentence-transformers on the same weights, as bench/cold_start.py does. The same pytest
selection runs under each path, alternately, `--rounds` times; the figure is the ratio of the medians.

    .venv/bin/python bench/suite_time.py [--rounds 2] [PYTEST ARGS...]   # default: the process-starting tests
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The tests that start Lore processes (CLI commands, Celery workers, `lore serve` and its answer processes): where
# an embedder's import cost is paid again and again.
DEFAULT_SELECTION = [
    "tests/test_cli.py",
    "tests/test_procfile.py",
    "tests/test_workers.py",
    "tests/bot/test_socket_mode.py",
]

SITECUSTOMIZE = '''
import importlib.abc, importlib.util, sys


class _SwapEmbedder(importlib.abc.MetaPathFinder):
    """After lore.embeddings loads, its LocalEmbedder is sentence-transformers on the same weights."""

    def find_spec(self, name, path=None, target=None):
        if name != "lore.embeddings":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)

            class SentenceTransformers(module.SentenceTransformerEmbedder):
                def __init__(self, *, home=None, batch_size=64, build_missing=True):
                    super().__init__(batch_size=batch_size)

            module.LocalEmbedder = SentenceTransformers

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _SwapEmbedder())
'''


def run(selection: list[str], path: str, shim: Path) -> float:
    env = dict(os.environ)
    if path == "torch":
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(shim), env.get("PYTHONPATH", "")) if p)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    tail = result.stdout.strip().splitlines()[-1:] or [""]
    print(f"  {path:<5} {seconds:7.1f} s  {tail[0]}", flush=True)
    if result.returncode != 0:
        raise SystemExit(f"pytest failed under the {path} path:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("selection", nargs="*", default=DEFAULT_SELECTION)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lore-suite-time-") as tmp:
        shim = Path(tmp)
        (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
        times: dict[str, list[float]] = {"onnx": [], "torch": []}
        for n in range(args.rounds):
            print(f"round {n + 1}", flush=True)
            for path in ("torch", "onnx") if n % 2 else ("onnx", "torch"):
                times[path].append(run(args.selection, path, shim))
    onnx, torch = statistics.median(times["onnx"]), statistics.median(times["torch"])
    print(f"selection: {' '.join(args.selection)}")
    print(f"median: ONNX {onnx:.1f} s, sentence-transformers {torch:.1f} s, ratio {onnx / torch:.2f}")


if __name__ == "__main__":
    main()
