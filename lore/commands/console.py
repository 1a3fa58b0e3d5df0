"""`lore console`: the web console alone, for local use, with a sign-in token valid while it runs (like Jupyter)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading

import click

from lore.commands.common import EXIT_USAGE, fail, load_settings
from lore.db import DatabaseError, check_database


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _start_worker() -> subprocess.Popen[bytes]:
    """A Celery worker for the console's ingest jobs, in its own process group (stopped with the console)."""
    args = [sys.executable, "-m", "lore.cli", "worker", "-c", "1", "--without-mingle", "--without-gossip"]
    return subprocess.Popen(args, start_new_session=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@click.command("console")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True, help="Port to listen on.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option(
    "--worker/--no-worker", default=True, show_default=True, help="Start a Celery worker for ingest jobs beside it."
)
def console(host: str, port: int, no_browser: bool, worker: bool) -> None:
    """Serve the web console alone (Ask, Knowledge, Feedback, Answers, Eval, Settings) and print its address."""
    import uvicorn

    from web.app import create_console_app

    settings = load_settings()
    try:
        check_database(settings)
    except DatabaseError as exc:
        fail(str(exc))
    if not _port_free(host, port):
        fail(f"port {port} on {host} is in use: choose another with --port", EXIT_USAGE)
    run_token = secrets.token_urlsafe(32)
    app = create_console_app(settings, run_token=run_token)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/console/?token={run_token}"
    click.echo(f"Lore console: {url}", err=False)
    click.echo("(the token is valid while this process runs; Ctrl-C stops it)", err=True)
    sys.stdout.flush()
    if not no_browser:
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    process = _start_worker() if worker else None
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    finally:
        if process is not None:
            _stop(process)
