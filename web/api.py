"""/api/v1: the console's HTTP API, for scripts too (Bearer token) and for the pages (session cookie + CSRF).

Every route authenticates before it does anything: without a valid token or session the answer is 401 and
nothing runs. Search, ask and answers act with the caller's DM permissions (web.context); ingest, jobs and
removal are for admins.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bot.regenerate import REGENERATE_SETTINGS
from lore import feedback
from lore.agent import answer_question
from lore.logs import kv
from lore.search import SearchError, search_scored
from lore.types import SEARCH_MODES, Answer, Asker, TokenSink
from web import queries
from web.auth import AuthError, Principal, check_csrf
from web.context import SECURITY_HEADERS, Console, conversation_acl, error_json

log = logging.getLogger(__name__)

Handler = Callable[[Request, Principal], Awaitable[Response]]
VOTES = {"up": 1, "down": -1, "clear": 0}
MAX_QUESTION_CHARS = 4000
MAX_URLS = 50
_FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the other fields of an upload


def guarded(console: Console, handler: Handler, *, admin: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """`handler` behind authentication (and CSRF on POST, admin when asked): refused requests run nothing."""

    async def endpoint(request: Request) -> Response:
        try:
            principal = await run_in_threadpool(console.keyring.principal, request)
            if request.method == "POST":
                form = None
                if principal.via == "session" and not request.headers.get("x-csrf-token"):
                    form = await _form(console, request)
                check_csrf(principal, request, form)
            if admin and not principal.admin:
                raise AuthError("this is for admins (LORE_ADMIN_USERS)", 403)
        except AuthError as exc:
            response = error_json(exc.status, str(exc))
            if exc.retry_after:
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except TooLarge as exc:
            return error_json(413, str(exc))
        try:
            return await handler(request, principal)
        except AuthError as exc:
            return error_json(exc.status, str(exc))
        except TooLarge as exc:
            return error_json(413, str(exc))
        except BadRequest as exc:
            return error_json(400, str(exc))
        except NotFound as exc:
            return error_json(404, str(exc))

    return endpoint


class BadRequest(ValueError):
    """The request's parameters or body are wrong; the message says how."""


class TooLarge(ValueError):
    """The request body is over the size limit."""


class NotFound(LookupError):
    """No such answer, job or document, or not the caller's to see (the two read alike)."""


async def _form(console: Console, request: Request) -> Any:
    content_type = request.headers.get("content-type") or ""
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return None
    limit = int(console.settings.max_file_mb * 1_000_000) * 10 + _FORM_OVERHEAD
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise BadRequest("send a Content-Length with a form")
    if int(length) > limit:
        raise TooLarge(f"upload too large: {int(length)} bytes, the limit is {limit}")
    return await request.form(max_files=10, max_fields=60)


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest("the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def ok(document: Any, status: int = 200) -> Response:
    return _secure(JSONResponse(document, status_code=status))


# -- search and ask -------------------------------------------------------------------------------------


def scored_json(scored: list[Any]) -> list[dict[str, Any]]:
    """`lore search --json` rows plus why each ranks where it does (vector, page, full-text, share of the question's
    words, feedback)."""
    return [
        {
            **s.hit.as_json(),
            "document_id": s.hit.document_id,
            "heading": s.hit.heading,
            "why": {
                "similarity": s.similarity,
                "page": s.page,
                "fulltext": s.fulltext,
                "words": s.words,
                "feedback": s.feedback,
            },
        }
        for s in scored
    ]


def parse_search(request: Request) -> tuple[str, int, str, str | None]:
    q = (request.query_params.get("q") or "").strip()
    if not q:
        raise BadRequest("q is required")
    try:
        k = int(request.query_params.get("k") or 10)
    except ValueError as exc:
        raise BadRequest("k must be a whole number") from exc
    if not 1 <= k <= 100:
        raise BadRequest("k must be between 1 and 100")
    mode = request.query_params.get("mode") or "hybrid"
    if mode not in SEARCH_MODES:
        raise BadRequest(f"mode must be one of {', '.join(SEARCH_MODES)}")
    return q, k, mode, request.query_params.get("channel") or None


class Api:
    """The route functions, bound to the console's shared state."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.settings = console.settings

    async def search(self, request: Request, me: Principal) -> Response:
        q, k, mode, channel = parse_search(request)
        asker = await run_in_threadpool(self.console.asker, me, channel=channel)
        try:
            scored = await run_in_threadpool(lambda: search_scored(self.settings, q, asker=asker, k=k, mode=mode))
        except SearchError as exc:
            raise BadRequest(str(exc)) from exc
        if request.query_params.get("explain"):
            return ok(scored_json(scored))
        return ok([s.hit.as_json() for s in scored])

    async def ask(self, request: Request, me: Principal) -> Response:
        body = await _json(request)
        question = body.get("question")
        if not isinstance(question, str) or not question.strip():
            raise BadRequest("question is required")
        if len(question) > MAX_QUESTION_CHARS:
            raise BadRequest(f"question is longer than {MAX_QUESTION_CHARS} characters")
        channel, conversation = body.get("channel"), body.get("conversation")
        asker = await run_in_threadpool(
            lambda: self.console.asker(
                me,
                channel=channel if isinstance(channel, str) else None,
                conversation=conversation if isinstance(conversation, str) else None,
            )
        )

        def run(sink: TokenSink | None) -> Answer:
            return answer_question(self.settings, question, asker=asker, on_token=sink)

        if wants_stream(request):
            return self.stream(run, asker)
        answer = await run_in_threadpool(run, None)
        return ok(answer.as_json())

    def stream(self, run: Callable[[TokenSink | None], Answer], asker: Asker) -> Response:
        return _secure(
            StreamingResponse(
                sse_answer(self.console, run, asker),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            )
        )

    # -- answers ------------------------------------------------------------------------------------------

    async def _answer(self, request: Request, me: Principal) -> dict[str, Any]:
        try:
            answer_id = int(request.path_params["answer_id"])
        except ValueError as exc:
            raise BadRequest("answer id must be a number") from exc
        found = await run_in_threadpool(queries.answer, self.settings, answer_id, user_id=me.user_id, admin=me.admin)
        if found is None:
            raise NotFound(f"no answer {answer_id}")
        return found

    async def get_answer(self, request: Request, me: Principal) -> Response:
        found = await self._answer(request, me)
        asker = await run_in_threadpool(self.console.asker, me)
        visible = await run_in_threadpool(lambda: queries.passages(self.settings, found["chunk_ids"], asker=asker))
        queries.redact(found, visible, user_id=me.user_id)
        found["passages"] = await run_in_threadpool(
            queries.cited_passages, self.settings, found["citations"], found["chunk_ids"], asker
        )
        return ok(found)

    async def vote(self, request: Request, me: Principal) -> Response:
        body = await _json(request)
        value = VOTES.get(str(body.get("value")))
        if value is None:
            raise BadRequest('value must be "up", "down" or "clear"')
        source = body.get("source")
        if source is not None and not isinstance(source, str):
            raise BadRequest("source must be the uri of one of the answer's sources")
        found = await self._answer(request, me)
        try:
            await run_in_threadpool(
                lambda: feedback.record_vote_naming_source(
                    self.settings,
                    answer_id=found["answer_id"],
                    user_id=me.user_id,
                    value=value,
                    via="web",
                    source_uri=source,
                )
            )
        except feedback.FeedbackError as exc:
            raise BadRequest(str(exc)) from exc
        log.info(kv("web_vote", answer_id=found["answer_id"], value=value, named_source=source is not None))
        updated = await run_in_threadpool(
            queries.answer, self.settings, found["answer_id"], user_id=me.user_id, admin=me.admin
        )
        assert updated is not None
        return ok({"answer_id": found["answer_id"], "votes": updated["votes"]})

    async def regenerate(self, request: Request, me: Principal) -> Response:
        """Another answer to the same question {"conversation"?} (hotter sampling, more passages)."""
        found = await self._answer(request, me)
        body = await _json(request) if await request.body() else {}
        conversation = body.get("conversation") if isinstance(body.get("conversation"), str) else None
        asker = await run_in_threadpool(lambda: self.console.asker(me, conversation=conversation))

        def run(sink: TokenSink | None) -> Answer:
            return answer_question(
                self.settings,
                found["question"],
                asker=asker,
                on_token=sink,
                generation=dict(REGENERATE_SETTINGS),
                parent_id=found["answer_id"],
            )

        if wants_stream(request):
            return self.stream(run, asker)
        return ok((await run_in_threadpool(run, None)).as_json())

    async def compare(self, request: Request, me: Principal) -> Response:
        """Which is better? {"rejected": other_answer_id}: this answer was chosen over that one."""
        body = await _json(request)
        chosen = await self._answer(request, me)
        try:
            rejected_id = int(body.get("rejected"))  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise BadRequest("rejected must be an answer id") from exc
        other = await run_in_threadpool(queries.answer, self.settings, rejected_id, user_id=me.user_id, admin=me.admin)
        if other is None or other["question"] != chosen["question"]:
            raise BadRequest("rejected must be another answer of yours to the same question")
        try:
            await run_in_threadpool(
                lambda: feedback.record_comparison(
                    self.settings, chosen_id=chosen["answer_id"], rejected_id=rejected_id, user_id=me.user_id
                )
            )
        except feedback.FeedbackError as exc:
            raise BadRequest(str(exc)) from exc
        return ok({"chosen": chosen["answer_id"], "rejected": rejected_id})

    async def critique(self, request: Request, me: Principal) -> Response:
        """What was wrong? {"critique", "correction"?}"""
        body = await _json(request)
        critique = str(body.get("critique") or "")[:4000]
        correction = body.get("correction")
        found = await self._answer(request, me)
        await run_in_threadpool(
            lambda: feedback.record_critique(
                self.settings,
                answer_id=found["answer_id"],
                user_id=me.user_id,
                critique=critique,
                correction=str(correction)[:8000] if correction else None,
            )
        )
        return ok({"answer_id": found["answer_id"], "recorded": True})

    # -- knowledge ----------------------------------------------------------------------------------------

    async def ingest(self, request: Request, me: Principal) -> Response:
        """Files (multipart `files`) and/or URLs (`urls`) into the knowledge base as one Celery ingest job."""
        content_type = request.headers.get("content-type") or ""
        if content_type.startswith("multipart/form-data"):
            form = await _form(self.console, request)
            urls = [u for raw in form.getlist("urls") for u in str(raw).split()]
            uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
            channel = str(form.get("channel") or "") or None
        else:
            body = await _json(request)
            urls = body.get("urls") or []
            if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                raise BadRequest("urls must be a list of strings")
            uploads, channel = [], body.get("channel") or None
        bad = [u for u in urls if not u.startswith(("http://", "https://"))]
        if bad:
            raise BadRequest(f"not an http(s) URL: {bad[0][:200]}")
        if not urls and not uploads:
            raise BadRequest("send files or urls")
        if len(urls) + len(uploads) > MAX_URLS:
            raise BadRequest(f"at most {MAX_URLS} sources a job")
        paths = await self.save_uploads(uploads)
        acl = [str(channel)] if channel else ["public"]
        from workers.ingest_jobs import queue_ingest

        job_id = await run_in_threadpool(lambda: queue_ingest(self.settings, [*urls, *paths], acl=acl))
        log.info(kv("web_ingest", job=job_id, files=len(paths), urls=len(urls)))
        found = await run_in_threadpool(queries.job, self.settings, job_id)
        return ok(found, 202)

    async def conversation_files(self, request: Request, me: Principal) -> Response:
        """Files dropped into a console conversation (multipart `files`): an ingest job whose documents only that
        user's asks in that conversation can see, as files shared in a Slack thread."""
        own = conversation_acl(me.user_id, str(request.path_params["conversation"]))
        form = await _form(self.console, request)
        uploads = [f for f in (form.getlist("files") if form is not None else []) if isinstance(f, UploadFile)]
        uploads = [f for f in uploads if f.filename]
        if not uploads or len(uploads) > MAX_URLS:
            raise BadRequest(f"send 1 to {MAX_URLS} files (multipart field `files`)")
        paths = await self.save_uploads(uploads)
        from workers.ingest_jobs import queue_ingest

        job_id = await run_in_threadpool(lambda: queue_ingest(self.settings, paths, acl=[own]))
        log.info(kv("web_conversation_files", job=job_id, files=len(paths)))
        return ok(await run_in_threadpool(queries.job, self.settings, job_id), 202)

    async def conversation_job(self, request: Request, me: Principal) -> Response:
        own = conversation_acl(me.user_id, str(request.path_params["conversation"]))
        try:
            job_id = int(request.path_params["job_id"])
        except ValueError as exc:
            raise BadRequest("job id must be a number") from exc
        found = await run_in_threadpool(queries.job, self.settings, job_id)
        if found is None or found["acl"] != [own]:
            raise NotFound(f"no job {job_id} in this conversation")
        return ok(found)

    async def save_uploads(self, uploads: list[UploadFile]) -> list[str]:
        """Each upload under LORE_HOME/uploads/<random>/<its name>, refused whole when one is over the limit."""
        limit = int(self.settings.max_file_mb * 1_000_000)
        for upload in uploads:
            if upload.size is not None and upload.size > limit:
                raise TooLarge(f"{upload.filename}: {upload.size} bytes, the limit is {limit} (LORE_MAX_FILE_MB)")
        paths = []
        for upload in uploads:
            name = Path(str(upload.filename).replace("\\", "/")).name.lstrip(".") or "upload"
            folder = Path(self.settings.home) / "uploads" / uuid.uuid4().hex
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / name[:200]
            data = await upload.read()
            await run_in_threadpool(target.write_bytes, data)
            paths.append(str(target))
        return paths

    async def get_job(self, request: Request, me: Principal) -> Response:
        try:
            job_id = int(request.path_params["job_id"])
        except ValueError as exc:
            raise BadRequest("job id must be a number") from exc
        found = await run_in_threadpool(queries.job, self.settings, job_id)
        return ok(found) if found is not None else error_json(404, f"no job {job_id}")

    async def delete_document(self, request: Request, me: Principal) -> Response:
        try:
            document_id = int(request.path_params["document_id"])
        except ValueError as exc:
            raise BadRequest("document id must be a number") from exc
        uri = await run_in_threadpool(queries.delete_document, self.settings, document_id)
        if uri is None:
            return error_json(404, f"no document {document_id}")
        log.info(kv("web_document_removed", id=document_id))
        return ok({"deleted": document_id, "uri": uri})


def wants_stream(request: Request) -> bool:
    return "text/event-stream" in (request.headers.get("accept") or "") or request.query_params.get("stream") == "1"


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def sse_answer(console: Console, run: Callable[[TokenSink | None], Answer], asker: Asker) -> AsyncIterator[str]:
    """The answer as server-sent events: `token` {"text"} as the model writes, then `done` (the JSON of `lore ask
    --json` with each citation's passage) or `error`. Each token is handed from the answering thread to the
    event loop as it arrives, so it leaves as soon as the model sends it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def sink(text: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("token", text))

    def work() -> None:
        try:
            answer = run(sink)
        except Exception as exc:  # reported to the page; the log has the details
            log.exception(kv("web_answer_failed", error=type(exc).__name__))
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
        else:
            loop.call_soon_threadsafe(queue.put_nowait, ("done", answer))

    # Kept referenced until the answer is recorded: a reader who leaves early does not stop the answer.
    console.pending.add(worker := asyncio.ensure_future(run_in_threadpool(work)))
    worker.add_done_callback(console.pending.discard)
    yield ": answering\n\n"
    while True:
        kind, value = await queue.get()
        if kind == "token":
            yield sse("token", {"text": value})
        elif kind == "error":
            yield sse("error", {"error": "the answer failed; try again"})
            return
        else:
            done = value.as_json()
            numbered = [{"number": c.number, "uri": c.uri, "title": c.title} for c in value.citations]
            done["passages"] = await run_in_threadpool(
                queries.cited_passages, console.settings, numbered, value.chunk_ids, asker
            )
            done["latency_ms"] = value.latency_ms
            yield sse("done", done)
            return


def routes(console: Console) -> list[Route]:
    api = Api(console)
    g = guarded
    return [
        Route("/search", g(console, api.search), methods=["GET"]),
        Route("/ask", g(console, api.ask), methods=["POST"]),
        Route("/answers/{answer_id}", g(console, api.get_answer), methods=["GET"]),
        Route("/answers/{answer_id}/vote", g(console, api.vote), methods=["POST"]),
        Route("/answers/{answer_id}/regenerate", g(console, api.regenerate), methods=["POST"]),
        Route("/answers/{answer_id}/compare", g(console, api.compare), methods=["POST"]),
        Route("/answers/{answer_id}/critique", g(console, api.critique), methods=["POST"]),
        Route("/conversations/{conversation}/files", g(console, api.conversation_files), methods=["POST"]),
        Route("/conversations/{conversation}/jobs/{job_id}", g(console, api.conversation_job), methods=["GET"]),
        Route("/ingest", g(console, api.ingest, admin=True), methods=["POST"]),
        Route("/jobs/{job_id}", g(console, api.get_job, admin=True), methods=["GET"]),
        Route("/documents/{document_id}/delete", g(console, api.delete_document, admin=True), methods=["POST"]),
    ]
