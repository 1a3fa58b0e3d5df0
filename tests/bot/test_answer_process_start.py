"""An answer process of `lore serve` (bot/pool.py) is ready with the embedder loaded on ONNX Runtime, no torch."""

from __future__ import annotations

import time
from pathlib import Path

from bot.pool import AnswerProcesses
from harness.polling import wait_until
from lore.config import Settings


def test_an_answer_process_warms_up_on_onnx_runtime_without_torch(bot_settings: Settings) -> None:
    started = time.monotonic()
    pool = AnswerProcesses(bot_settings, processes=1, threads=1)
    try:
        pids = wait_until(lambda: pool.ready_pids(), timeout=120)
        ready_s = time.monotonic() - started
        maps = Path(f"/proc/{pids[0]}/maps").read_text()
        # Ready means warmed up: the embedder has embedded once, so its runtime is mapped, and torch is not.
        assert "onnxruntime" in maps
        assert "libtorch" not in maps, f"the answer process loaded torch (ready after {ready_s:.1f} s)"
    finally:
        pool.close(10.0)
