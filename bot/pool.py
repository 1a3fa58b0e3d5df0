"""Answer processes: the ack path and the answering never share a Python interpreter.

Retrieval, embedding and the LLM client are CPU-heavy Python; on the same interpreter as the HTTP server they
hold the GIL and Slack's acks wait behind them (measured: seconds at 100 events/s). `lore serve` therefore
hands each AnswerJob to a few worker processes, each running many answers at once on threads (the work is
mostly waiting on the model), at a lower CPU priority than the process that acknowledges Slack.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.queues import Queue
from typing import Any

from bot import metrics
from bot.jobs_answer import AnswerJob, perform
from lore.config import Settings
from lore.logs import kv, setup_logging

log = logging.getLogger(__name__)

_NICE = 19  # answer work yields the CPU to the acknowledging process (the lowest priority there is)


def _exit_with_parent(parent_pid: int) -> None:
    """A child whose server died (even by SIGKILL) must not linger holding its pipes and memory."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(0)


def _child_main(
    settings: Settings, queue: Queue[Any], counts: Queue[Any], threads: int, parent_pid: int, cores: int
) -> None:
    # The processes share the machine's cores: torch's own thread pool per process would oversubscribe them
    # (set before torch is first imported, by the embedder).
    os.environ.setdefault("OMP_NUM_THREADS", str(cores))
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="lore-parent-watch", daemon=True).start()
    metrics.forward_to(counts)
    from bot.app import create_client
    from bot.state import BotState
    from lore.agent import answer_question

    setup_logging(settings.log_level)
    with contextlib.suppress(OSError):  # not permitted here: run at normal priority
        os.nice(_NICE)
    state = BotState(settings=settings, answerer=answer_question)
    client = create_client(settings)
    slots = threading.BoundedSemaphore(threads)
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lore-answer")

    def run(job: AnswerJob) -> None:
        try:
            perform(state, client, job)
        except Exception:
            log.exception(kv("answer_job_failed", channel=job.channel_id, thread_ts=job.thread_ts))
        finally:
            slots.release()

    while True:
        slots.acquire()  # take a job only when a thread is free, so idle processes get the rest
        job = queue.get()
        if job is None:
            slots.release()
            break
        executor.submit(run, job)
    executor.shutdown(wait=True)


class AnswerProcesses:
    """`processes` workers sharing one job queue, `threads` concurrent answers each."""

    def __init__(self, settings: Settings, *, processes: int, threads: int) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        self.queue: Queue[Any] = context.Queue()
        self.counts: Queue[Any] = context.Queue()
        self.processes = [
            context.Process(
                target=_child_main,
                args=(
                    settings,
                    self.queue,
                    self.counts,
                    threads,
                    os.getpid(),
                    max(1, (os.cpu_count() or 1) // processes),
                ),
                name=f"lore-answers-{n}",
                daemon=True,
            )
            for n in range(processes)
        ]
        for process in self.processes:
            process.start()
        atexit.register(self.close, 5.0)
        threading.Thread(target=self._collect_counts, name="lore-answer-metrics", daemon=True).start()
        log.info(kv("answer_processes_started", processes=processes, threads=threads))

    def _collect_counts(self) -> None:
        while True:
            try:
                metrics.apply(self.counts.get())
            except (EOFError, OSError):  # the queue closed at shutdown
                return

    def submit(self, job: AnswerJob) -> None:
        self.queue.put(job)

    def alive(self) -> int:
        return sum(1 for p in self.processes if p.is_alive())

    def close(self, timeout: float = 10.0) -> None:
        if not any(p.is_alive() for p in self.processes):
            return
        for _ in self.processes:
            self.queue.put(None)
        for process in self.processes:
            process.join(timeout)
            if process.is_alive():
                process.terminate()
