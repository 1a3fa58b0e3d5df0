"""Answer processes: the ack path and the answering never share a Python interpreter.

Retrieval, embedding and the LLM client are CPU-heavy Python; on the same interpreter as the HTTP server they
hold the GIL and Slack's acks wait behind them (seconds at 100 events/s). `lore serve` therefore
hands each AnswerJob to a few worker processes, each running many answers at once on threads (the work is
mostly waiting on the model), at a lower CPU priority than the process that acknowledges Slack.

The server supervises them:
- Each worker has a pipe of its own, and the server hands a job to a ready worker with a free thread. (One
  shared multiprocessing.Queue would be simpler, but an idle reader blocks in `get()` holding the queue's
  lock: a worker killed there, by the OOM killer say, would leave every other worker waiting forever.)
- A worker that dies is replaced. Jobs it had not begun go to another worker; for the ones it had begun, the
  server posts the apology the worker would have posted (an answer that fails is never silence).
- Stopping the server lets the workers finish the answers they have begun; a question still waiting for a
  worker then gets that apology too, rather than nothing.
- A worker retires after `LORE_BOT_MAX_ANSWERS` answers: its replacement starts at once, and it finishes the
  answers it has in flight, then exits. An answer process's memory grows slowly over its life under load
  (docs/reliability.md); recycling bounds it whatever the cause.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import itertools
import logging
import multiprocessing
import os
import random
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from bot import metrics
from bot.answering import post_apology
from bot.jobs_answer import AnswerJob, perform
from bot.slack_client import create_client
from bot.state import BotState
from bot.worker_client import WorkerClient
from lore.config import Settings
from lore.logs import kv, setup_logging

log = logging.getLogger(__name__)

_NICE = 19  # answer work yields the CPU to the acknowledging process (the lowest priority there is)
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def _exit_with_parent(parent_pid: int) -> None:
    """A child whose server died (even by SIGKILL) must not linger holding its pipes and memory."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(0)


class _Sender:
    """The child's end of its pipe, shared by its answer threads (a Connection is not thread-safe).
    Also what `metrics.forward_to` puts counts on."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def put(self, message: tuple[Any, ...]) -> None:
        with self.lock, contextlib.suppress(OSError):  # the server is gone: _exit_with_parent ends this process
            self.conn.send(message)


def _child_main(settings: Settings, conn: Connection, threads: int, parent_pid: int, cores: int) -> None:
    # The processes share the machine's cores: torch's own thread pool per process would oversubscribe them
    # (set before torch is first imported, by the embedder).
    os.environ.setdefault("OMP_NUM_THREADS", str(cores))
    # A stop signal sent to the whole process group (Ctrl-C, honcho, systemd) is the server's to handle: it
    # asks its workers to finish their answers and exit (and a worker whose server died exits on its own).
    # Dying at once instead, they would be replaced by the server during its own shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _fixed_mmap_threshold()
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="lore-parent-watch", daemon=True).start()
    sender = _Sender(conn)
    metrics.forward_to(sender)
    from lore.agent import answer_question

    setup_logging(settings.log_level)
    with contextlib.suppress(OSError):  # not permitted here: run at normal priority
        os.nice(_NICE)
    state = BotState(settings=settings, answerer=answer_question, workers=WorkerClient(settings))
    client = create_client(settings)
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lore-answer")

    def run(seq: int, job: AnswerJob) -> None:
        sender.put(("started", seq))  # from here on the job is this process's: never handed to another
        try:
            perform(state, client, job)
        except Exception:
            log.exception(kv("answer_job_failed", channel=job.channel_id, thread_ts=job.thread_ts))
        finally:
            sender.put(("done", seq))

    _warm_up(settings)
    sender.put(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server closed the pipe
            break
        if message is None:  # retire, or the server is stopping
            break
        executor.submit(run, *message)
    executor.shutdown(wait=True)  # the answers in flight are finished first


def _fixed_mmap_threshold() -> None:
    """Give large blocks back to the OS as soon as they are freed (glibc only; elsewhere a no-op).

    The embedder, called from many threads, sees batches of ever new shapes, and glibc keeps the freed buffers
    of each (its dynamic mmap threshold rises after the first large free), so the process grows without a leak;
    a fixed 128 KiB threshold hands them back at no measurable cost (docs/reliability.md)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


def _warm_up(settings: Settings) -> None:
    """Load the embedder (and, with a chat model configured, the LangChain answer paths) before taking jobs, so
    that a fresh worker's first answer does not pay for them: the search-only path never imports LangChain."""
    from lore.embeddings import get_embedder

    try:
        get_embedder(settings).embed(["warm-up"])
    except Exception:  # a remote embedder that is down: answers report it, one at a time
        log.exception(kv("answer_process_warm_up_failed"))
    if settings.effective_chat_model is not None:
        import lore.generate  # noqa: F401  (imported for its cost, paid here rather than by the first answer)


@dataclass(eq=False)
class _Worker:
    """One answer process as the server sees it."""

    slot: int
    process: BaseProcess
    conn: Connection
    ready: bool = False
    retiring: bool = False
    answers: int = 0  # jobs handed to it over its life
    budget: int = 0  # retire after this many (0: never)
    in_flight: dict[int, AnswerJob] = field(default_factory=dict)
    started: set[int] = field(default_factory=set)  # in-flight jobs the worker has begun


class AnswerProcesses:
    """`processes` workers, `threads` concurrent answers each, supervised: a worker that dies is replaced, and one
    that has taken `max_answers` jobs retires in favour of a fresh one."""

    def __init__(self, settings: Settings, *, processes: int, threads: int, max_answers: int | None = None) -> None:
        self.settings = settings
        self.threads = threads
        self.max_answers = settings.bot_max_answers if max_answers is None else max_answers
        self.context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        self.cores = max(1, (os.cpu_count() or 1) // processes)
        self.changed = threading.Condition()  # guards everything below; notified on any change
        self.pending: collections.deque[AnswerJob] = collections.deque()
        self.workers: list[_Worker] = []
        self.closing = False
        self.replaced = 0  # workers started in place of exited ones, over the pool's life
        self.seq = itertools.count()
        self._client: Any = None  # the server's own Slack client, for apologies (made on first need)
        # Wakes the receiver when the set of pipes to watch changes.
        self.wake_reader, self.wake_writer = self.context.Pipe(duplex=False)
        with self.changed:
            for slot in range(processes):
                self._start(slot)
        atexit.register(self.close, 5.0)
        threading.Thread(target=self._dispatch, name="lore-answer-dispatch", daemon=True).start()
        threading.Thread(target=self._receive, name="lore-answer-receive", daemon=True).start()
        log.info(kv("answer_processes_started", processes=processes, threads=threads, max_answers=self.max_answers))

    def _start(self, slot: int) -> None:
        """Start a worker in `slot` (the lock is held)."""
        parent_end, child_end = self.context.Pipe()
        process = self.context.Process(
            target=_child_main,
            args=(self.settings, child_end, self.threads, os.getpid(), self.cores),
            name=f"lore-answers-{slot}",
            daemon=True,
        )
        process.start()
        child_end.close()  # the child's copy is its own: EOF here means the child is gone
        # Up to a tenth more than the setting, so that workers started together do not all retire at once.
        budget = self.max_answers + random.randint(0, self.max_answers // 10) if self.max_answers else 0
        self.workers.append(_Worker(slot, process, parent_end, budget=budget))
        with contextlib.suppress(OSError):
            self.wake_writer.send_bytes(b"")

    def submit(self, job: AnswerJob) -> None:
        with self.changed:
            self.pending.append(job)
            self.changed.notify_all()

    def _free_worker(self) -> _Worker | None:
        """The ready, non-retiring worker with the most free threads (the lock is held)."""
        free = [w for w in self.workers if w.ready and not w.retiring and len(w.in_flight) < self.threads]
        return min(free, key=lambda w: len(w.in_flight)) if free else None

    def _dispatch(self) -> None:
        while True:
            with self.changed:
                while not self.closing and not (self.pending and self._free_worker()):
                    self.changed.wait()
                if self.closing:
                    return
                worker = self._free_worker()
                assert worker is not None
                job = self.pending.popleft()
                seq = next(self.seq)
                try:
                    worker.conn.send((seq, job))
                except OSError:  # it just died: the receiver replaces it; the job goes to another
                    self.pending.appendleft(job)
                    worker.ready = False
                    continue
                worker.in_flight[seq] = job
                worker.answers += 1
                if worker.budget and worker.answers >= worker.budget:
                    self._retire(worker)

    def _retire(self, worker: _Worker) -> None:
        """Ask a worker to finish its answers and exit, and start its replacement now (the lock is held)."""
        worker.retiring = True
        with contextlib.suppress(OSError):
            worker.conn.send(None)
        log.info(kv("answer_process_retiring", slot=worker.slot, pid=worker.process.pid, answers=worker.answers))
        self._start(worker.slot)
        self.replaced += 1

    def _receive(self) -> None:
        while True:
            with self.changed:
                if self.closing and not self.workers:  # while stopping, workers still report answers done
                    return
                by_conn = {w.conn: w for w in self.workers}
            for conn in wait([*by_conn, self.wake_reader]):
                if conn is self.wake_reader:
                    with contextlib.suppress(OSError, EOFError):
                        self.wake_reader.recv_bytes()
                    continue
                worker = by_conn[conn]  # type: ignore[index]
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    self._exited(worker)
                    continue
                self._handle(worker, message)

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        with self.changed:
            if message[0] == "started":
                worker.started.add(message[1])
                return
            if message[0] == "done":
                worker.in_flight.pop(message[1], None)
                worker.started.discard(message[1])
            elif message[0] == "ready":
                worker.ready = True
            else:
                metrics.apply(message)
                return
            self.changed.notify_all()

    def _exited(self, worker: _Worker) -> None:
        """A worker's pipe closed: it retired, or died. Reap it; replace it unless it was retiring."""
        worker.process.join(5.0)
        code = worker.process.exitcode
        with self.changed:
            if worker not in self.workers:
                return
            self.workers.remove(worker)
            worker.conn.close()
            # Jobs it never began (still in its pipe when it died) go to another worker, first in line; the ones
            # it had begun may have posted part of an answer, and one of them may be what killed it: not retried.
            lost = [job for seq, job in worker.in_flight.items() if seq in worker.started]
            unstarted = [job for seq, job in sorted(worker.in_flight.items()) if seq not in worker.started]
            self.pending.extendleft(reversed(unstarted))
            if not worker.retiring and not self.closing:
                self._start(worker.slot)
                self.replaced += 1
            self.changed.notify_all()
        if lost:  # not on this thread: posting takes a round trip to Slack per job, and more on a retry
            threading.Thread(target=self._apologize, args=(lost, f"exit {code}"), name="lore-apology").start()
        event = kv("answer_process_exited", slot=worker.slot, pid=worker.process.pid, exitcode=code)
        if code == 0 and worker.retiring:
            log.info(event)
        elif not self.closing:
            log.warning(event)  # killed or crashed: replaced
        with contextlib.suppress(ValueError):
            worker.process.close()  # its sentinel, or a long-running server leaks descriptors

    def ready_pids(self) -> list[int]:
        """The process ids of the workers taking jobs (started, warmed up, not retiring)."""
        with self.changed:
            return [w.process.pid for w in self.workers if w.ready and not w.retiring and w.process.pid is not None]

    def close(self, timeout: float = 10.0) -> None:
        with self.changed:
            if self.closing:
                return
            self.closing = True
            self.changed.notify_all()
            workers = list(self.workers)
        for worker in workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        with contextlib.suppress(OSError):
            self.wake_writer.send_bytes(b"")
        for worker in workers:
            with contextlib.suppress(ValueError):  # already reaped (and closed) by the receiver
                worker.process.join(timeout)
                if worker.process.is_alive():
                    worker.process.kill()  # they ignore SIGTERM (see _child_main)
        # The receiver reaps them (apologising for any answer one was killed in), then stops; the questions no
        # worker took are apologised for here.
        with self.changed:
            self.changed.wait_for(lambda: not self.workers, timeout=10.0)
            waiting = list(self.pending)
            self.pending.clear()
        # Bounded: with Slack unreachable, each post could wait out the client's timeout and hold the shutdown.
        self._apologize(waiting, "server stopping", deadline=time.monotonic() + timeout)

    def _apologize(self, jobs: list[AnswerJob], reason: str, *, deadline: float | None = None) -> None:
        """Post the apology in the thread of each job that will not be answered, with a reference to the log
        (past `deadline`, the rest are only logged)."""
        for job in jobs:
            ref = uuid.uuid4().hex[:8]
            log.warning(kv("answer_job_lost", ref=ref, reason=reason, channel=job.channel_id, thread_ts=job.thread_ts))
            if deadline is not None and time.monotonic() > deadline:
                log.warning(kv("apology_skipped", ref=ref, reason="shutdown deadline"))
                continue
            if self._client is None:
                try:
                    self._client = create_client(self.settings)
                except Exception:
                    metrics.record_error("apology")
                    log.exception(kv("apology_failed", ref=ref, channel=job.channel_id))
                    continue
            post_apology(self._client, channel_id=job.channel_id, thread_ts=job.thread_ts, ref=ref)
