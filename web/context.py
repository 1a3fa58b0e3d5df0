"""What every console route shares: settings, the keyring, templates, and the caller's permissions.

A console user sees exactly what they would see in a DM with Lore (lore.access: public documents plus the
channels they are a member of); the local admin of `lore console` and LORE_ADMIN_USERS also get the admin pages.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from lore.access import dm_asker
from lore.config import Settings
from lore.types import Asker
from web.auth import SIGNIN_COOKIE, AuthError, Keyring, Principal

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

SIGNIN_TEMPLATE = "signin.html"
SIGNIN_NONCE = re.compile(r"[A-Za-z0-9_-]{32}")  # secrets.token_urlsafe(24)


class Console:
    """The console's shared state; route functions receive it bound (see web.app)."""

    def __init__(self, settings: Settings, *, run_token: str | None = None) -> None:
        self.settings = settings
        self.keyring = Keyring(settings, run_token=run_token)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["href"] = safe_href
        self.pending: set[asyncio.Future[Any]] = set()  # answers still being written for a reader who left

    def asker(self, principal: Principal, *, channel: str | None = None, conversation: str | None = None) -> Asker:
        """The principal asking as in a DM with Lore; with `channel`, as in that channel (a member only); with
        `conversation`, also seeing the files dropped into that conversation of theirs."""
        asker = dm_asker(self.settings, principal.user_id, surface=SURFACE)
        if conversation:
            own = conversation_acl(principal.user_id, conversation)
            return Asker(
                user_id=principal.user_id, is_dm=True, member_channels=[*asker.member_channels, own], surface=SURFACE
            )
        if channel:
            if channel not in asker.member_channels:
                raise AuthError(f"you are not a member of channel {channel}", 403)
            return Asker(user_id=principal.user_id, channel_id=channel, surface=SURFACE, private=True)
        return asker

    def render(
        self, request: Request, template: str, principal: Principal | None, status: int = 200, **ctx: Any
    ) -> Response:
        nonce = ""
        if template == SIGNIN_TEMPLATE:  # its form posts a sign-in: give it the pre-session CSRF token (web.auth)
            nonce = request.cookies.get(SIGNIN_COOKIE) or ""
            if not SIGNIN_NONCE.fullmatch(nonce):
                nonce = secrets.token_urlsafe(24)
            ctx["signin_csrf"] = self.keyring.signin_csrf(nonce)
        response = self.templates.TemplateResponse(
            request, template, {"me": principal, "settings": self.settings, **ctx}, status_code=status
        )
        response.headers.update(SECURITY_HEADERS)
        if nonce:
            response.set_cookie(
                SIGNIN_COOKIE,
                nonce,
                max_age=86400,
                path="/console",
                secure=request.url.scheme == "https",
                httponly=True,
                samesite="strict",
            )
        return response


CONVERSATION_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def conversation_acl(user_id: str, conversation: str) -> str:
    """The ACL entry of the files dropped into one console conversation: its user's and that conversation's alone
    (another user sending the same conversation id gets another entry), so they answer there and nowhere else."""
    if not CONVERSATION_ID.fullmatch(conversation):
        raise AuthError("conversation must be 16-64 letters, digits, - or _", 400)
    digest = hashlib.sha256(f"{user_id}\x00{conversation}".encode()).hexdigest()[:32]
    return f"web-conversation:{digest}"


def safe_href(uri: str) -> str:
    """A document's address as a link target only when it is a web address (never javascript: or file:)."""
    return uri if uri.startswith(("https://", "http://")) else "#"


def error_json(status: int, message: str, **extra: Any) -> JSONResponse:
    response = JSONResponse({"error": message, **extra}, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response
