"""The console's routes for the composition root: /console/ (pages, static assets) and /api/v1, mounted beside
Slack's by `lore serve --http`, or alone (plus /healthz) by `lore console`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from lore.config import Settings
from web import api, oidc, pages
from web.context import HERE, Console

CONSOLE_PATH = "/console"
API_PATH = "/api/v1"


def console_routes(settings: Settings, *, run_token: str | None = None) -> list[BaseRoute]:
    """/console/... and /api/v1/...; `run_token` (from `lore console`) signs in the local admin while it runs."""
    console = Console(settings, run_token=run_token)
    return [
        Mount(
            CONSOLE_PATH,
            routes=[
                Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
                *oidc.routes(console),
                *pages.routes(console),
            ],
        ),
        Mount(API_PATH, routes=api.routes(console)),
    ]


async def _healthz(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    from bot.server import database_ok

    ok = await run_in_threadpool(database_ok, request.app.state.settings)
    return JSONResponse({"ok": ok, "database": "up" if ok else "down"}, status_code=200 if ok else 503)


async def _root(request: Request) -> Response:
    return RedirectResponse(CONSOLE_PATH + "/", status_code=307)


def create_console_app(settings: Settings, *, run_token: str | None) -> Starlette:
    """The console alone, as `lore console` serves it."""
    routes: list[BaseRoute] = [
        Route("/", _root, methods=["GET"]),
        Route("/healthz", _healthz, methods=["GET"]),
        *console_routes(settings, run_token=run_token),
    ]
    app = Starlette(routes=routes)
    app.state.settings = settings
    return app
