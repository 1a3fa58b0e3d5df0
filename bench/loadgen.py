"""A lean load generator for the Slack benchmarks: pre-signed requests over keep-alive HTTP/1.1 connections.

Slack's servers are not on the machine in production, so the client should cost the 2 shared cores as
little as possible: requests are signed and encoded before the clock starts, and sent with bare asyncio
streams (no HTTP client library), so the figures measure the bot, not the load generator.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from harness.slack_signing import signature

TIMEOUT_S = 3.0  # Slack gives up on a request after 3 s


def signed_request(
    host: str, port: int, body: bytes, secret: str, *, extra_headers: dict[str, str] | None = None
) -> bytes:
    """The raw bytes of a POST /slack/events request signed as Slack signs it (timestamp: now)."""
    ts = str(int(time.time()))
    headers = {
        "Host": f"{host}:{port}",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(secret, ts, body),
        **(extra_headers or {}),
    }
    head = "POST /slack/events HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + body


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)  # seconds, from the scheduled send to the response
    statuses: Counter[int | str] = field(default_factory=Counter)
    timeouts: int = 0


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


class _Pool:
    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.available = asyncio.Condition()

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with self.available:
            while not self.idle and self.opened >= self.size:
                await self.available.wait()
            if self.idle:
                return self.idle.pop()
            self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    async def put(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        async with self.available:
            if conn is None:
                self.opened -= 1
            else:
                self.idle.append(conn)
            self.available.notify()

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def _send_one(pool: _Pool, request: bytes, scheduled: float | None, results: Results) -> None:
    conn = None
    try:
        conn = await pool.get()
        if scheduled is None:  # closed loop: the request starts when a connection is free
            scheduled = time.perf_counter()
        left = TIMEOUT_S - (time.perf_counter() - scheduled)
        try:
            status = await asyncio.wait_for(_exchange(*conn, request), left)
        except TimeoutError:  # a subclass of OSError: a slow server, not a closed connection
            raise
        except (OSError, asyncio.IncompleteReadError):
            # The server closed an idle keep-alive connection as the request went out (it never read it):
            # like any HTTP client (and Slack, which retries), send it again on a fresh connection.
            conn[1].close()
            conn = await asyncio.open_connection(pool.host, pool.port)
            results.statuses["resent on a fresh connection"] += 1
            left = TIMEOUT_S - (time.perf_counter() - scheduled)
            status = await asyncio.wait_for(_exchange(*conn, request), left)
        results.latencies.append(time.perf_counter() - scheduled)
        results.statuses[status] += 1
    except (TimeoutError, ValueError):  # ValueError: the 3 s had passed before the request could go
        results.timeouts += 1
        if conn is not None:
            conn[1].close()
        conn = None
    except (OSError, asyncio.IncompleteReadError) as exc:
        results.statuses[f"error {type(exc).__name__}"] += 1
        if conn is not None:
            conn[1].close()
        conn = None
    finally:
        await pool.put(conn)


async def _run(host: str, port: int, requests: list[bytes], rate: float | None, connections: int) -> Results:
    results = Results()
    pool = _Pool(host, port, connections)
    start = time.perf_counter()
    tasks = []
    for i, request in enumerate(requests):
        scheduled = start + i / rate if rate else None
        if rate:
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        # Closed loop (no rate): every request waits for a free connection; only throughput is meaningful.
        tasks.append(asyncio.create_task(_send_one(pool, request, scheduled, results)))
    await asyncio.gather(*tasks)
    pool.close()
    return results


def send(host: str, port: int, requests: list[bytes], *, rate: float | None = None, connections: int = 32) -> Results:
    """Send `requests` at `rate` per second (None: as fast as `connections` keep-alive connections allow)."""
    return asyncio.run(_run(host, port, requests, rate, connections))
