"""The console's pages under /console/: one route function and one template a page, server-rendered.

Pages read through the same core functions as the API and the CLI (lore.search, lore.documents, web.queries);
a caller who is not signed in gets the sign-in page (401), a non-admin on an admin page a 403.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from lore.documents import source_counts
from lore.logs import kv
from lore.search import SearchError, search_scored
from lore.types import EXPORT_FORMATS, SEARCH_MODES
from web import charts, queries, stats
from web.auth import COOKIE, AuthError, Principal, check_csrf, check_signin_csrf
from web.context import SECURITY_HEADERS, Console

log = logging.getLogger(__name__)

PageHandler = Callable[[Request, Principal], Response]
NAV = [("ask", "Ask", False), ("knowledge", "Knowledge", False), ("answers", "Answers", False),
       ("feedback", "Feedback", True), ("eval", "Eval", True), ("settings", "Settings", True)]  # fmt: skip


def page(console: Console, handler: PageHandler, *, admin: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """A page behind the session (or a Bearer token): the sign-in page when nobody is signed in."""

    async def endpoint(request: Request) -> Response:
        try:
            me = await run_in_threadpool(console.keyring.principal, request)
        except AuthError as exc:
            response = console.render(request, "signin.html", None, status=exc.status, reason=str(exc))
            if request.cookies.get(COOKIE):
                response.delete_cookie(COOKIE, path="/")
            return response
        if admin and not me.admin:
            return console.render(request, "forbidden.html", me, status=403)
        return await run_in_threadpool(handler, request, me)

    return endpoint


def sign_in(console: Console, request: Request, me: Principal, *, to: str = "/console/ask") -> Response:
    """Set the session cookie for `me` and send the browser on, without the token in its address bar."""
    response = RedirectResponse(to, status_code=303)
    response.set_cookie(
        COOKIE,
        console.keyring.session_cookie(me.user_id, admin=me.admin),
        max_age=console.keyring.session_s,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    response.headers.update(SECURITY_HEADERS)
    log.info(kv("console_sign_in", user=me.user_id, admin=me.admin))
    return response


class Pages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.settings = console.settings

    async def index(self, request: Request) -> Response:
        """/console/: `?token=T` signs T's user in; otherwise on to Ask (which asks to sign in if needed).

        Only an address the person opened themselves (typed, pasted, opened by `lore console`: Sec-Fetch-Site
        none) or one this console linked to signs in at once. A link on another site, or a browser that does not
        say, gets a button to press instead: a page elsewhere must not sign its visitor in as the token's user."""
        token = request.query_params.get("token")
        if token is None:
            return RedirectResponse("/console/ask", status_code=303)
        try:
            me = await run_in_threadpool(self.console.keyring.sign_in_token, token)
        except AuthError as exc:
            return self.console.render(request, "signin.html", None, status=exc.status, reason=str(exc))
        site = request.headers.get("sec-fetch-site") or ""
        if site not in ("none", "same-origin"):
            log.info(kv("console_sign_in_confirm", user=me.user_id, fetch_site=site or "-"))
            return self.console.render(request, "signin.html", None, confirm=me.user_id, token=token)
        return sign_in(self.console, request, me)

    async def signin_form(self, request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=5)
        try:
            check_signin_csrf(self.console.keyring, request, form)
        except AuthError as exc:
            log.warning(
                kv("console_sign_in_refused", reason="csrf", fetch_site=request.headers.get("sec-fetch-site") or "-")
            )
            return self.console.render(request, "signin.html", None, status=exc.status, reason=str(exc))
        try:
            me = await run_in_threadpool(self.console.keyring.sign_in_token, str(form.get("token") or ""))
        except AuthError as exc:
            return self.console.render(request, "signin.html", None, status=exc.status, reason=str(exc))
        return sign_in(self.console, request, me)

    async def signout(self, request: Request) -> Response:
        try:
            me = self.console.keyring.principal(request)
            check_csrf(me, request, await request.form(max_files=0, max_fields=5))
        except AuthError as exc:
            return self.console.render(request, "signin.html", None, status=exc.status, reason=str(exc))
        response = RedirectResponse("/console/signin", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    def signin(self, request: Request) -> Response:
        return self.console.render(request, "signin.html", None, reason="")

    def ask(self, request: Request, me: Principal) -> Response:
        return self.console.render(request, "ask.html", me, page="ask")

    def knowledge(self, request: Request, me: Principal) -> Response:
        asker = self.console.asker(me)
        q = (request.query_params.get("q") or "").strip()[:500]
        mode = request.query_params.get("mode") or "hybrid"
        hits, error = [], ""
        if q:
            try:
                hits = search_scored(self.settings, q, asker=asker, k=10, mode=mode)
            except SearchError as exc:
                error = str(exc)
        filter_text = (request.query_params.get("filter") or "").strip()[:200]
        return self.console.render(
            request,
            "knowledge.html",
            me,
            page="knowledge",
            q=q,
            mode=mode,
            modes=SEARCH_MODES,
            hits=hits,
            error=error,
            filter=filter_text,
            sources=source_counts(self.settings, asker=asker),
            documents=queries.documents_page(self.settings, asker=asker, q=filter_text),
            jobs=queries.recent_jobs(self.settings) if me.admin else [],
            sync=queries.sync_state(self.settings) if me.admin else [],
        )

    def document(self, request: Request, me: Principal) -> Response:
        found = queries.document(self.settings, int(request.path_params["document_id"]), asker=self.console.asker(me))
        if found is None:
            return self.console.render(request, "missing.html", me, status=404, what="document")
        return self.console.render(request, "document.html", me, page="knowledge", doc=found)

    def answers(self, request: Request, me: Principal) -> Response:
        q = (request.query_params.get("q") or "").strip()[:200]
        before = request.query_params.get("before")
        rows = queries.answers_page(
            self.settings, user_id=me.user_id, admin=me.admin, q=q, before=int(before) if before else None
        )
        return self.console.render(request, "answers.html", me, page="answers", rows=rows, q=q)

    def answer(self, request: Request, me: Principal) -> Response:
        answer_id = int(request.path_params["answer_id"])
        found = queries.answer(self.settings, answer_id, user_id=me.user_id, admin=me.admin)
        if found is None:
            return self.console.render(request, "missing.html", me, status=404, what="answer")
        visible = queries.passages(self.settings, found["chunk_ids"], asker=self.console.asker(me))
        hidden = queries.redact(found, visible, user_id=me.user_id)
        messages = [] if hidden else queries.prompt_messages(self.settings, answer_id)
        return self.console.render(
            request, "answer.html", me, page="answers", a=found, messages=messages, passages=visible
        )

    def feedback(self, request: Request, me: Principal) -> Response:
        data = stats.feedback_page(self.settings, acl=self.console.asker(me).visible_acl(), days=30)
        rendered = {
            "up_rate_day": charts.bar_chart(
                "up-rate by day", [(d, r * 100) for d, r in data["up_rate_by_day"]], unit="%", top=100
            ),
            "up_rate_channel": charts.bar_chart(
                "up-rate by channel", [(c, r * 100) for c, r, *_ in data["up_rate_by_channel"]], unit="%", top=100
            ),
            "answers_day": charts.bar_chart("answers per day", data["answers_per_day"]),
            "latency": charts.line_chart(
                "latency by day", data["days"], {"p50": data["latency_p50"], "p95": data["latency_p95"]}, unit=" ms"
            ),
        }
        return self.console.render(
            request, "feedback.html", me, page="feedback", d=data, charts=rendered, formats=EXPORT_FORMATS
        )

    def export(self, request: Request, me: Principal) -> Response:
        from lore.exports import ExportError, build_examples, write_jsonl

        fmt = request.query_params.get("format") or ""
        if fmt not in EXPORT_FORMATS:
            return self.console.render(request, "missing.html", me, status=404, what=f"export format {fmt[:40]!r}")
        try:
            examples = build_examples(self.settings, fmt)
        except ExportError as exc:
            return self.console.render(request, "missing.html", me, status=400, what=str(exc))
        out = io.StringIO()
        write_jsonl(examples, out)
        headers = {"Content-Disposition": f'attachment; filename="lore-{fmt}.jsonl"', **SECURITY_HEADERS}
        return StreamingResponse(iter([out.getvalue()]), media_type="application/x-ndjson", headers=headers)

    def settings_page(self, request: Request, me: Principal) -> Response:
        from web.health import config_rows

        return self.console.render(request, "settings.html", me, page="settings", rows=config_rows(self.settings))

    def health(self, request: Request, me: Principal) -> Response:
        from starlette.responses import JSONResponse

        from web.health import health

        response = JSONResponse(health(self.settings))
        response.headers.update(SECURITY_HEADERS)
        return response


def routes(console: Console) -> list[Route]:
    p = Pages(console)
    from web.eval_page import EvalPage

    ev = EvalPage(console)
    return [
        Route("/", p.index, methods=["GET"]),
        Route("/signin", p.signin, methods=["GET"]),
        Route("/signin", p.signin_form, methods=["POST"]),
        Route("/signout", p.signout, methods=["POST"]),
        Route("/ask", page(console, p.ask), methods=["GET"]),
        Route("/knowledge", page(console, p.knowledge), methods=["GET"]),
        Route("/knowledge/documents/{document_id:int}", page(console, p.document), methods=["GET"]),
        Route("/answers", page(console, p.answers), methods=["GET"]),
        Route("/answers/{answer_id:int}", page(console, p.answer), methods=["GET"]),
        Route("/feedback", page(console, p.feedback, admin=True), methods=["GET"]),
        Route("/feedback/export", page(console, p.export, admin=True), methods=["GET"]),
        Route("/eval", page(console, ev.show, admin=True), methods=["GET"]),
        Route("/eval", ev.run, methods=["POST"]),
        Route("/settings", page(console, p.settings_page, admin=True), methods=["GET"]),
        Route("/settings/health", page(console, p.health, admin=True), methods=["GET"]),
    ]
