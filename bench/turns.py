"""Interleaved timing for the search benchmarks (bench/search.py, bench/search_real.py): contenders take turns
query by query, so that a drift of the shared machine hits all of them alike."""

from __future__ import annotations

import time
from collections.abc import Callable


def take_turns(contenders: list[tuple[str, Callable[[int], object]]], n: int) -> dict[str, list[float]]:
    """One round: each contender runs each of the n queries once; its seconds per query, by name.

    - The order turns query by query: whoever runs right after the bare query runs with colder caches (about
      0.1x on 13,373 real chunks), so no contender may always take that place.
    - Contender j runs query i + j*n/len(contenders): never a query another one has just run. The same query
      right after another is cheaper (its part of the HNSW graph is still in the CPU cache), which would favour
      whichever runs second."""
    took: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for i in range(n):
        for turn in range(len(contenders)):
            j = (turn + i) % len(contenders)
            name, fn = contenders[j]
            started = time.perf_counter()
            fn((i + j * n // len(contenders)) % n)
            took[name].append(time.perf_counter() - started)
    return took
