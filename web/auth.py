"""Who is calling the console or its API: Bearer tokens, the signed session cookie, CSRF, the local run token.

A session cookie is `payload.signature`: base64url JSON (user, admin, expiry, nonce) and its HMAC-SHA256 under the
console key (LORE_CONSOLE_SECRET, else a random key kept under LORE_HOME, so replicas sharing a home agree). The
CSRF token of a session is an HMAC of its nonce: pages carry it, every POST made with the cookie must send it back
(header X-CSRF-Token or form field csrf_token). Bearer calls need no CSRF token: a browser never adds that header
on its own.

Signing in has a CSRF token of its own, before any session exists (login CSRF: another site must not sign a
visitor in as someone else, whose answers and uploads the visitor would then make): the sign-in page sets a random
nonce in a SameSite=Strict cookie and carries the nonce's HMAC in its form; a sign-in POST must bring both, and
one a browser marks as coming from another site (Sec-Fetch-Site) is refused whatever it carries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request

from lore import tokens
from lore.config import Settings
from lore.db import DatabaseError
from lore.logs import kv

log = logging.getLogger(__name__)

COOKIE = "lore_session"
SIGNIN_COOKIE = "lore_signin"
# Sec-Fetch-Site values of a request another site made the browser send (a subdomain is "same-site").
FOREIGN_SITES = ("cross-site", "same-site")
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
LOCAL_USER = "local"
_SECRET_FILE = "console-secret"


class AuthError(PermissionError):
    """The request does not authenticate (status 401) or is not allowed (403); the message says why."""

    def __init__(self, message: str, status: int = 401, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    """The console user a request acts as: a Slack user id (or `local`) and whether they administer Lore."""

    user_id: str
    admin: bool
    via: str  # "bearer" or "session"
    csrf: str = ""  # the session's CSRF token (empty for Bearer calls)


def console_key(settings: Settings) -> bytes:
    """The key that signs sessions: LORE_CONSOLE_SECRET, else a random one created once under LORE_HOME."""
    if settings.console_secret is not None:
        return settings.console_secret.get_secret_value().encode("utf-8")
    path = Path(settings.home) / _SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Keyring:
    """Signs and checks sessions; knows the run token of `lore console` (valid while that process runs)."""

    def __init__(self, settings: Settings, *, run_token: str | None = None) -> None:
        self.settings = settings
        self.key = console_key(settings)
        self.run_token = run_token
        self.session_s = int(settings.console_session_hours * 3600)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self.key, payload.encode("ascii"), hashlib.sha256).digest())

    def session_cookie(self, user_id: str, *, admin: bool) -> str:
        body = {"u": user_id, "a": admin, "exp": int(time.time()) + self.session_s, "n": secrets.token_urlsafe(16)}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{self._sign(payload)}"

    def tag(self, purpose: str, value: str) -> str:
        """A keyed tag of `value` for one purpose (a tag made for one never passes as another's)."""
        return hmac.new(self.key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:40]

    def csrf_for(self, nonce: str) -> str:
        return self.tag("csrf", nonce)

    def signin_csrf(self, nonce: str) -> str:
        """The sign-in form's token for the pre-session nonce in the browser's SIGNIN_COOKIE."""
        return self.tag("signin", nonce)

    def read_session(self, cookie: str) -> Principal:
        payload, _, signature = cookie.partition(".")
        if not payload or not hmac.compare_digest(signature.encode("ascii", "replace"), self._sign(payload).encode()):
            raise AuthError("invalid session: sign in again")
        try:
            body = json.loads(_unb64(payload))
            user, admin, expires, nonce = str(body["u"]), bool(body["a"]), int(body["exp"]), str(body["n"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError("invalid session: sign in again") from exc
        if expires < time.time():
            raise AuthError("session expired: sign in again")
        return Principal(user, admin, "session", self.csrf_for(nonce))

    def sign_in_token(self, token: str) -> Principal:
        """The user a sign-in token (the run token, or a personal token) stands for; AuthError otherwise."""
        token = token.strip()
        if self.run_token and hmac.compare_digest(token.encode(), self.run_token.encode()):
            return Principal(LOCAL_USER, True, "bearer")
        try:
            info = tokens.authenticate(self.settings, token)
        except tokens.TokenError as exc:
            raise AuthError(str(exc)) from exc
        except DatabaseError as exc:
            raise AuthError("cannot check the token now: the database is unavailable", 503) from exc
        return Principal(info.user_id, info.admin or self.is_admin(info.user_id), "bearer")

    def is_admin(self, user_id: str) -> bool:
        return user_id in self.settings.csv("admin_users")

    def bearer(self, token: str) -> Principal:
        """A Bearer call: the run token, or a personal token (counted against its rate limit)."""
        token = token.strip()
        if self.run_token and hmac.compare_digest(token.encode(), self.run_token.encode()):
            return Principal(LOCAL_USER, True, "bearer")
        try:
            info = tokens.authenticate(self.settings, token)
            tokens.consume(self.settings, info)
        except tokens.RateLimited as exc:
            raise AuthError(str(exc), 429, exc.retry_after) from exc
        except tokens.TokenError as exc:
            log.info(kv("console_token_refused", reason=str(exc).split(":")[0]))
            raise AuthError(str(exc)) from exc
        except DatabaseError as exc:
            raise AuthError("cannot check the token now: the database is unavailable", 503) from exc
        return Principal(info.user_id, info.admin or self.is_admin(info.user_id), "bearer")

    def principal(self, request: Request) -> Principal:
        """Who `request` acts as (Bearer header first, then the session cookie); AuthError when nobody."""
        header = request.headers.get("authorization") or ""
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("malformed Authorization header: send Authorization: Bearer <token>")
            return self.bearer(token)
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            raise AuthError("not signed in: send Authorization: Bearer <token> or sign in at /console/")
        return self.read_session(cookie)


def check_csrf(principal: Principal, request: Request, form: Any = None) -> None:
    """A POST made with the session cookie must carry the session's CSRF token; Bearer calls need none."""
    if principal.via != "session":
        return
    sent = request.headers.get(CSRF_HEADER) or (str(form.get(CSRF_FIELD) or "") if form is not None else "")
    if not sent or not hmac.compare_digest(sent.encode("utf-8", "replace"), principal.csrf.encode()):
        raise AuthError("missing or wrong CSRF token: reload the page", 403)


def check_signin_csrf(keyring: Keyring, request: Request, form: Any) -> None:
    """A sign-in POST must come from this site's own sign-in page: the browser does not call it cross-site, and it
    brings the form token that matches its pre-session cookie. AuthError (403) otherwise."""
    site = request.headers.get("sec-fetch-site") or ""
    if site in FOREIGN_SITES:
        raise AuthError(f"sign-in refused: the request came from another site ({site}); sign in from this page", 403)
    nonce = request.cookies.get(SIGNIN_COOKIE) or ""
    sent = str(form.get(CSRF_FIELD) or "")
    expected = keyring.signin_csrf(nonce).encode() if nonce else b""
    if not expected or not sent or not hmac.compare_digest(sent.encode("utf-8", "replace"), expected):
        raise AuthError("sign-in refused: missing or wrong sign-in token; reload this page and sign in again", 403)
