"""The bot's imports: it hands work to the workers by task name, and its modules import each other one way."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_bot_never_imports_task_code() -> None:
    code = (
        "import json, sys, bot.app, bot.server, bot.pool, bot.worker_client; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('workers'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == ["workers", "workers.app"]


def _imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_no_bot_module_imports_the_app_module_that_imports_it() -> None:
    """bot/app.py builds the app from the other modules; none of them imports it back (not even lazily)."""
    importers = sorted(
        str(path.relative_to(REPO))
        for path in (REPO / "bot").rglob("*.py")
        if path.name != "app.py" and "bot.app" in _imports(path)
    )
    assert importers == ["bot/server.py"]  # server.create_http_app builds the app when not given one
