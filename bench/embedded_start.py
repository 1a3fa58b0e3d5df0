"""Embedded PostgreSQL start-up: cold (initdb + start), restart (data kept, server stopped), warm (running).

Each figure is measured in its own subprocess so imports and the server handle are not shared, and the
anchor is a bare `SELECT 1` connection to the running server measured in the same run.

    .venv/bin/python bench/embedded_start.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# Imports are excluded: they cost the same whatever the server's state (and are noisy on a shared machine).
PROBE = (
    "import time; from lore.config import Settings; from lore.db import database_url; import psycopg;"
    "t = time.perf_counter(); psycopg.connect(database_url(Settings())).execute('SELECT 1');"
    "print(time.perf_counter() - t)"
)
ANCHOR = (
    "import time, sys, psycopg; t = time.perf_counter(); psycopg.connect(sys.argv[1]).execute('SELECT 1');"
    "print(time.perf_counter() - t)"
)


def probe(home: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={"LORE_HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def url(home: Path) -> str:
    code = "from lore.config import Settings; from lore.db import database_url; print(database_url(Settings()))"
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"LORE_HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def stop(home: Path) -> None:
    code = "from lore.config import Settings; from lore.db import stop_embedded; stop_embedded(Settings())"
    subprocess.run([sys.executable, "-c", code], env={"LORE_HOME": str(home), "PATH": "/usr/bin:/bin"}, check=True)


def main(rounds: int = 3) -> None:
    cold, restart, warm, anchor = [], [], [], []
    for _ in range(rounds):
        home = Path(tempfile.mkdtemp(prefix="lore-bench-start-"))
        cold.append(probe(home))
        warm.append(probe(home))
        uri = url(home)
        anchor.append(
            float(
                subprocess.run(
                    [sys.executable, "-c", ANCHOR, uri], capture_output=True, text=True, check=True
                ).stdout.strip()
            )
        )
        stop(home)
        restart.append(probe(home))
        stop(home)
        subprocess.run(["rm", "-rf", str(home)], check=True)
    med = statistics.median
    print(f"cold start (initdb + start + create db): {med(cold):.2f} s")
    print(f"restart (data kept, server stopped):      {med(restart):.2f} s")
    print(f"warm (server running, new process):       {med(warm):.3f} s")
    print(f"anchor: bare psycopg connect + SELECT 1:  {med(anchor):.3f} s")
    print(f"warm / anchor: {med(warm) / med(anchor):.1f}x   (median of {rounds} rounds)")


if __name__ == "__main__":
    main()
