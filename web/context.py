"""What every console route shares: settings, the keyring, templates, and the caller's permissions.

A console user sees exactly what they would see in a DM with Lore (lore.access: public documents plus the
channels they are a member of); the local admin of `lore console` and LORE_ADMIN_USERS also get the admin pages.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from lore.access import dm_asker
from lore.config import Settings
from lore.types import Asker
from web.auth import AuthError, Keyring, Principal

HERE = Path(__file__).resolve().parent
SURFACE = "web"
# Security headers for every console response: no inline script or style (a passage's text can never run),
# no framing, and no Referer that could carry a sign-in token elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self' https://slack.com"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Console:
    """The console's shared state; route functions receive it bound (see web.app)."""

    def __init__(self, settings: Settings, *, run_token: str | None = None) -> None:
        self.settings = settings
        self.keyring = Keyring(settings, run_token=run_token)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["href"] = safe_href
        self.pending: set[asyncio.Future[Any]] = set()  # answers still being written for a reader who left

    def asker(self, principal: Principal, *, channel: str | None = None) -> Asker:
        """The principal asking as in a DM with Lore; with `channel`, as in that channel (a member only)."""
        asker = dm_asker(self.settings, principal.user_id, surface=SURFACE)
        if channel:
            if channel not in asker.member_channels:
                raise AuthError(f"you are not a member of channel {channel}", 403)
            return Asker(user_id=principal.user_id, channel_id=channel, surface=SURFACE, private=True)
        return asker

    def render(
        self, request: Request, template: str, principal: Principal | None, status: int = 200, **ctx: Any
    ) -> Response:
        response = self.templates.TemplateResponse(
            request, template, {"me": principal, "settings": self.settings, **ctx}, status_code=status
        )
        response.headers.update(SECURITY_HEADERS)
        return response


def safe_href(uri: str) -> str:
    """A document's address as a link target only when it is a web address (never javascript: or file:)."""
    return uri if uri.startswith(("https://", "http://")) else "#"


def error_json(status: int, message: str, **extra: Any) -> JSONResponse:
    response = JSONResponse({"error": message, **extra}, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response
