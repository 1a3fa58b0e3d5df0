"""The Eval page: upload (or pick) a question set, run `lore eval retrieval` in every mode, keep the history.

A question set is the JSONL of `lore eval retrieval` ({"query", "relevant"} rows), or the cases the corrections
make (a question and the source its correction named); each run's results by mode are kept in eval_runs, so the
page charts recall, MRR and nDCG over time.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lore.db import raw_connection
from lore.eval import EvalFileError, evaluate, load_eval_set
from lore.logs import kv
from lore.types import SEARCH_MODES
from web import charts
from web.auth import AuthError, Principal, check_csrf
from web.context import Console

log = logging.getLogger(__name__)

MAX_SET_BYTES = 2_000_000
MAX_QUESTIONS = 500
K = 5


def run_eval(console: Console, name: str, data: bytes) -> dict[str, Any]:
    """Evaluate a question set in every mode and record the run; EvalFileError for a bad file."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as handle:
        handle.write(data)
        handle.flush()
        rows = load_eval_set(Path(handle.name))
    if len(rows) > MAX_QUESTIONS:
        raise EvalFileError(f"{len(rows)} questions; at most {MAX_QUESTIONS} a run here (use `lore eval retrieval`)")
    results = [r.as_json(with_mode=True) for r in evaluate(console.settings, rows, modes=list(SEARCH_MODES), k=K)]
    with raw_connection(console.settings) as conn:
        row = conn.execute(
            "INSERT INTO eval_runs (name, questions, k, results, question_set)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (name[:200], len(rows), K, Jsonb(results), data.decode("utf-8", "replace")),
        ).fetchone()
    assert row is not None
    log.info(kv("eval_run", id=row[0], questions=len(rows)))
    return {"id": int(row[0]), "results": results}


def history(console: Console, limit: int = 50) -> list[dict[str, Any]]:
    with raw_connection(console.settings) as conn:
        rows = conn.execute(
            "SELECT id, name, questions, k, results, created_at FROM eval_runs ORDER BY id DESC LIMIT %s", (limit,)
        ).fetchall()
    return [
        {"id": int(i), "name": n, "questions": q, "k": k, "by_mode": {r["mode"]: r for r in res}, "created_at": c}
        for i, n, q, k, res, c in rows
    ]


# Corrections that name the right source, as eval cases: the question, and the document the correction pointed to.
# The page shows a run's scores, never its questions, so private conversations' corrections count too.
_FROM_CORRECTIONS = """
SELECT DISTINCT ON (a.question, c.source_uri) a.question, c.source_uri
FROM critiques c JOIN answers a ON a.id = c.answer_id
WHERE c.source_uri IS NOT NULL
ORDER BY a.question, c.source_uri
"""


def corrections_set(console: Console) -> bytes:
    """The eval cases the corrections make, as a question set (JSONL)."""
    with raw_connection(console.settings) as conn:
        rows = conn.execute(_FROM_CORRECTIONS).fetchall()
    return "".join(json.dumps({"query": q, "relevant": [uri]}) + "\n" for q, uri in rows).encode("utf-8")


def question_set(console: Console, run_id: int) -> tuple[str, bytes] | None:
    with raw_connection(console.settings) as conn:
        row = conn.execute("SELECT name, question_set FROM eval_runs WHERE id = %s", (run_id,)).fetchone()
    return (str(row[0]), str(row[1]).encode("utf-8")) if row else None


class EvalPage:
    def __init__(self, console: Console) -> None:
        self.console = console

    def show(self, request: Request, me: Principal, *, error: str = "", status: int = 200) -> Response:
        runs = history(self.console)
        ordered = list(reversed(runs))
        labels = [f"#{r['id']}" for r in ordered]
        chart = charts.line_chart(
            "MRR over runs",
            labels,
            {mode: [r["by_mode"].get(mode, {}).get("mrr") for r in ordered] for mode in SEARCH_MODES},
        )
        return self.console.render(
            request, "eval.html", me, page="eval", runs=runs, chart=chart, error=error, modes=SEARCH_MODES,
            status=status,
        )  # fmt: skip

    async def run(self, request: Request) -> Response:
        try:
            me = await run_in_threadpool(self.console.keyring.principal, request)
            length = int(request.headers.get("content-length") or 0)
            if length > MAX_SET_BYTES + 65536:
                return await run_in_threadpool(
                    lambda: self.show(request, me, error="question set too large (2 MB at most)", status=413)
                )
            form = await request.form(max_files=1, max_fields=5)
            check_csrf(me, request, form)
            if not me.admin:
                raise AuthError("this is for admins (LORE_ADMIN_USERS)", 403)
        except AuthError as exc:
            return self.console.render(request, "signin.html", None, status=exc.status, reason=str(exc))
        upload, rerun = form.get("questions"), str(form.get("rerun") or "")
        if isinstance(upload, UploadFile) and upload.filename:
            name, data = str(upload.filename), await upload.read()
        elif rerun.isdigit() and (found := await run_in_threadpool(question_set, self.console, int(rerun))):
            name, data = found
        elif form.get("from_corrections"):
            name, data = "corrections", await run_in_threadpool(corrections_set, self.console)
            if not data:
                message = 'no corrections name a source yet ("What was wrong?" with the right page\'s address)'
                return await run_in_threadpool(lambda: self.show(request, me, error=message, status=400))
        else:
            return await run_in_threadpool(lambda: self.show(request, me, error="choose a question set", status=400))
        try:
            await run_in_threadpool(run_eval, self.console, name, data)
        except (EvalFileError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            message = str(exc)
            return await run_in_threadpool(lambda: self.show(request, me, error=message, status=400))
        return RedirectResponse("/console/eval", status_code=303)
