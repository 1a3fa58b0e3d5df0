"""Sign in with Slack (OpenID Connect): the console user is the Slack user who approves, if they belong to this
workspace.

/console/auth/slack sends the browser to Slack's authorize page with a random state and nonce (kept, signed, in a
short cookie); Slack sends it back to /console/auth/slack/callback with a code and the state, which must be the
cookie's. `openid.connect.token` turns the code into an id token, which must carry the cookie's nonce, name this
Slack app as its audience and Slack as its issuer, and not have expired; `openid.connect.userInfo` must agree with
it. Its signature is not checked: the token comes straight from Slack's token endpoint over TLS, which OpenID
Connect Core (3.1.3.7, item 6) accepts in place of the signature. The user's workspace (`https://slack.com/team_id`)
must be this one: SLACK_TEAM_ID, else the bot token's (auth.test); when neither says, nobody signs in this way.
Slack's hosts come from SLACK_API_URL, so tests point the whole exchange at the fake Web API.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from lore.config import Settings
from lore.logs import kv
from web.auth import Principal
from web.context import Console
from web.pages import sign_in

log = logging.getLogger(__name__)

STATE_COOKIE = "lore_oidc_state"
STATE_PATH = "/console/auth/slack"
SCOPES = "openid profile email"
USER_CLAIM = "https://slack.com/user_id"
TEAM_CLAIM = "https://slack.com/team_id"
CLOCK_SKEW_S = 300
NO_WORKSPACE = "Sign in with Slack needs to know this workspace: set SLACK_TEAM_ID (or SLACK_BOT_TOKEN)"


class SignInError(PermissionError):
    """Slack's answer does not sign anyone in (status 401), or signs in someone who may not (403)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SlackIdentity:
    user: str
    team: str


def slack_base(settings: Settings) -> str:
    """Slack's web host beside its Web API (https://slack.com/api/ → https://slack.com): the OpenID issuer."""
    base = settings.slack_api_url.rstrip("/")
    return base[: -len("/api")] if base.endswith("/api") else base


def authorize_url(settings: Settings) -> str:
    return slack_base(settings) + "/openid/connect/authorize"


def redirect_uri(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/console/auth/slack/callback"


def id_token_claims(id_token: str) -> dict[str, Any]:
    """The claims of a JWT (its middle part); SignInError when it is not one."""
    parts = id_token.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not three parts")
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError as exc:
        raise SignInError("Slack's id token is malformed") from exc
    if not isinstance(claims, dict):
        raise SignInError("Slack's id token is malformed")
    return claims


def check_id_token(settings: Settings, claims: dict[str, Any], *, nonce: str) -> SlackIdentity:
    """The user and workspace an id token names, once it is this sign-in's (nonce), for this app (aud), from
    Slack (iss) and current (exp); SignInError otherwise."""
    sent_nonce = str(claims.get("nonce") or "")
    if not nonce or not hmac.compare_digest(sent_nonce.encode(), nonce.encode()):
        raise SignInError("the id token was not issued for this sign-in (nonce): try again")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if settings.slack_client_id not in audiences:
        raise SignInError("the id token was issued to another app (aud)")
    if claims.get("iss") != slack_base(settings):
        raise SignInError("the id token was not issued by Slack (iss)")
    try:
        expires = float(claims["exp"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SignInError("the id token has no expiry") from exc
    if expires < time.time() - CLOCK_SKEW_S:
        raise SignInError("the id token has expired: try again")
    user, team = str(claims.get(USER_CLAIM) or claims.get("sub") or ""), str(claims.get(TEAM_CLAIM) or "")
    if not user or not team:
        raise SignInError("Slack did not say who signed in, or from which workspace")
    return SlackIdentity(user, team)


def exchange(settings: Settings, *, code: str, redirect: str, nonce: str) -> SlackIdentity:
    """The Slack user (and workspace) a callback's code stands for; SignInError when Slack refuses it or its
    answer does not hold."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    assert settings.slack_client_id is not None and settings.slack_client_secret is not None
    try:
        token = WebClient(base_url=settings.slack_api_url, timeout=10).openid_connect_token(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            code=code,
            redirect_uri=redirect,
        )
        identity = check_id_token(settings, id_token_claims(str(token.get("id_token") or "")), nonce=nonce)
        info = WebClient(token=str(token["access_token"]), base_url=settings.slack_api_url, timeout=10)
        claims = info.openid_connect_userInfo()
    except SignInError:
        raise  # a PermissionError, hence an OSError: not "unreachable"
    except SlackApiError as exc:
        raise SignInError(f"Slack refused the sign-in: {exc.response.get('error')}") from exc
    except (OSError, KeyError) as exc:
        raise SignInError(f"Slack could not be reached to finish the sign-in ({type(exc).__name__})") from exc
    if str(claims.get(USER_CLAIM) or claims.get("sub") or "") != identity.user or (
        claims.get(TEAM_CLAIM) not in (None, identity.team)
    ):
        raise SignInError("Slack's id token and userInfo disagree about who signed in")
    return identity


class SlackSignIn:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.settings = console.settings
        self._bot_team: str | None = None  # the bot token's workspace, read once (it cannot change)
        self._lock = threading.Lock()

    def configured(self) -> bool:
        return bool(self.settings.slack_client_id and self.settings.slack_client_secret)

    def _state_signature(self, state: str, nonce: str) -> str:
        return self.console.keyring.tag("oidc", f"{state}.{nonce}")

    def _read_state(self, cookie: str) -> tuple[str, str]:
        """(state, nonce) from the state cookie when it is ours (signed), else empty strings."""
        state, _, rest = cookie.partition(".")
        nonce, _, signature = rest.partition(".")
        if not (state and nonce and signature):
            return "", ""
        if not hmac.compare_digest(signature.encode("ascii", "replace"), self._state_signature(state, nonce).encode()):
            return "", ""
        return state, nonce

    def workspaces(self) -> list[str]:
        """The team ids whose members may sign in: SLACK_TEAM_ID, else the bot token's (auth.test); SignInError
        when neither says (nobody may) or Slack cannot say now."""
        configured = self.settings.csv("slack_team_id")
        if configured:
            return configured
        if self.settings.slack_bot_token is None:
            raise SignInError(NO_WORKSPACE, 403)
        with self._lock:
            if self._bot_team:
                return [self._bot_team]
        from slack_sdk import WebClient
        from slack_sdk.errors import SlackApiError

        token = self.settings.slack_bot_token.get_secret_value()
        try:
            team = str(WebClient(token=token, base_url=self.settings.slack_api_url, timeout=10).auth_test()["team_id"])
        except SlackApiError as exc:
            raise SignInError(f"cannot check this workspace: auth.test said {exc.response.get('error')}", 503) from exc
        except (OSError, KeyError) as exc:
            raise SignInError(f"cannot check this workspace now ({type(exc).__name__}): try again", 503) from exc
        with self._lock:
            self._bot_team = team
        return [team]

    def sign_in_page(self, request: Request, reason: str, status: int) -> Response:
        return self.console.render(request, "signin.html", None, status=status, reason=reason)

    async def start(self, request: Request) -> Response:
        if not self.configured():
            return self.sign_in_page(request, "Sign in with Slack needs SLACK_CLIENT_ID and SLACK_CLIENT_SECRET", 404)
        if not self.settings.csv("slack_team_id") and self.settings.slack_bot_token is None:
            return self.sign_in_page(request, NO_WORKSPACE, 403)
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        query = {
            "response_type": "code",
            "scope": SCOPES,
            "client_id": self.settings.slack_client_id,
            "state": state,
            "nonce": nonce,
            "redirect_uri": redirect_uri(request),
        }
        if len(teams := self.settings.csv("slack_team_id")) == 1:
            query["team"] = teams[0]  # Slack then skips its workspace picker
        response = RedirectResponse(authorize_url(self.settings) + "?" + urlencode(query), status_code=303)
        response.set_cookie(
            STATE_COOKIE,
            f"{state}.{nonce}.{self._state_signature(state, nonce)}",
            max_age=600,
            path=STATE_PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="lax",
        )
        return response

    async def callback(self, request: Request) -> Response:
        state = request.query_params.get("state") or ""
        expected, nonce = self._read_state(request.cookies.get(STATE_COOKIE) or "")
        code = request.query_params.get("code") or ""
        if not self.configured():
            return self.sign_in_page(request, "Sign in with Slack is off", 404)
        if not state or not expected or not hmac.compare_digest(state.encode(), expected.encode()) or not code:
            log.info(kv("slack_sign_in_refused", reason="state"))
            return self.sign_in_page(request, "the sign-in expired or was not started here: try again", 401)
        try:
            who = await run_in_threadpool(
                exchange, self.settings, code=code, redirect=redirect_uri(request), nonce=nonce
            )
            allowed = await run_in_threadpool(self.workspaces)
            if who.team not in allowed:
                raise SignInError(
                    f"you signed in to Slack workspace {who.team}, and this Lore serves another one: sign in to "
                    "Slack with an account of this workspace",
                    403,
                )
        except SignInError as exc:
            log.warning(kv("slack_sign_in_refused", status=exc.status, reason=str(exc)))
            response = self.sign_in_page(request, str(exc), exc.status)
            response.delete_cookie(STATE_COOKIE, path=STATE_PATH)
            return response
        me = Principal(who.user, self.console.keyring.is_admin(who.user), "session")
        response = sign_in(self.console, request, me)
        response.delete_cookie(STATE_COOKIE, path=STATE_PATH)
        return response


def routes(console: Console) -> list[Route]:
    flow = SlackSignIn(console)
    return [
        Route("/auth/slack", flow.start, methods=["GET"]),
        Route("/auth/slack/callback", flow.callback, methods=["GET"]),
    ]
