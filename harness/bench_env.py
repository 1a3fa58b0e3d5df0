"""What every benchmark script starts with: a process environment of its own, and percentiles."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # isolate() runs before anything of Lore's is imported
    from lore.config import Settings


def isolate(home: Path, **extra: str) -> Path:
    """Drop the caller's Slack, OpenAI and Lore settings and point LORE_HOME at `home` (offline: no model hub),
    so that a benchmark measures Lore's defaults and never the operator's deployment."""
    for name in [n for n in os.environ if n.startswith(("SLACK_", "OPENAI_", "LORE_")) or n == "DATABASE_URL"]:
        del os.environ[name]
    os.environ.update({"LORE_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra})
    return home


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def migrated_with_freeze_page(settings: Settings) -> None:
    """Migrate the benchmark's database and give it the one page the Slack benchmarks' questions are about."""
    from harness.kb import add_document
    from lore.migrations import upgrade_database

    upgrade_database(settings)
    add_document(
        settings,
        uri="https://handbook.example.com/freeze",
        title="Deploy freeze",
        sections=[("Deploy freeze", "The deploy freeze runs from December 20 to January 3; hotfixes need a VP.")],
    )


def copy_home(source: Path, target: Path) -> Path:
    """A copy of the LORE_HOME `source` (a knowledge base) at `target`, startable while the source's own server
    runs: the copied server's pid and socket lock files are dropped, so its PostgreSQL starts afresh."""
    if not (source / "pgdata").exists():
        raise SystemExit(f"{source} is not a LORE_HOME with a knowledge base (no pgdata)")
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    pgdata = target / "pgdata"
    for stale in [pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*")]:
        stale.unlink(missing_ok=True)
    return target
