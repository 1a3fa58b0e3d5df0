"""The offline embedder: concurrent questions are encoded together and get exactly their own vectors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lore.embeddings import LocalEmbedder

QUESTIONS = [f"how do I configure feature number {n} of the deploy pipeline?" for n in range(24)]


def test_concurrent_calls_are_batched_and_each_gets_its_own_vectors() -> None:
    embedder = LocalEmbedder()
    alone = np.stack([embedder.embed([q])[0] for q in QUESTIONS])
    assert embedder.encode_calls == len(QUESTIONS)

    embedder.encode_calls = 0
    results: dict[int, np.ndarray] = {}
    gate = threading.Barrier(len(QUESTIONS))

    def ask(n: int) -> None:
        gate.wait()
        results[n] = embedder.embed([QUESTIONS[n]])

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(QUESTIONS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == list(range(len(QUESTIONS)))
    together = np.stack([results[n][0] for n in range(len(QUESTIONS))])
    # Same vectors as one at a time (padding in a batch is masked), each to the thread that asked.
    assert np.allclose(together, alone, atol=1e-5)
    assert embedder.encode_calls < len(QUESTIONS) / 2, embedder.encode_calls


def test_a_failing_batch_fails_every_caller_in_it_and_the_next_call_works(monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = LocalEmbedder()
    embedder.embed(["warm up"])
    real = LocalEmbedder._encode

    def broken(self: LocalEmbedder, texts: list[str]) -> np.ndarray:
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(LocalEmbedder, "_encode", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        embedder.embed(["a question"])
    monkeypatch.setattr(LocalEmbedder, "_encode", real)
    assert embedder.embed(["a question"]).shape == (1, 384)
