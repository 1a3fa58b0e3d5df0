"""Sign in with Slack (OpenID Connect): the console user is the Slack user who approves.

/console/auth/slack sends the browser to Slack's authorize page with a random state (kept in a short signed
cookie); Slack sends it back to /console/auth/slack/callback with a code, which `openid.connect.token` turns
into a token and `openid.connect.userInfo` into the user id. Slack's hosts come from SLACK_API_URL, so tests
point the whole exchange at the fake Web API.
"""

from __future__ import annotations

import hmac
import logging
import secrets
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
SCOPES = "openid profile email"
USER_CLAIM = "https://slack.com/user_id"


class SignInError(PermissionError):
    pass


def authorize_url(settings: Settings) -> str:
    """Slack's authorize page beside its Web API (https://slack.com/api/ → https://slack.com/openid/...)."""
    base = settings.slack_api_url.rstrip("/")
    base = base[: -len("/api")] if base.endswith("/api") else base
    return base + "/openid/connect/authorize"


def redirect_uri(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/console/auth/slack/callback"


def exchange(settings: Settings, *, code: str, redirect: str) -> str:
    """The Slack user id a callback's code stands for; SignInError when Slack refuses it."""
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
        info = WebClient(token=str(token["access_token"]), base_url=settings.slack_api_url, timeout=10)
        claims = info.openid_connect_userInfo()
    except SlackApiError as exc:
        raise SignInError(f"Slack refused the sign-in: {exc.response.get('error')}") from exc
    except (OSError, KeyError) as exc:
        raise SignInError(f"Slack could not be reached to finish the sign-in ({type(exc).__name__})") from exc
    user = claims.get(USER_CLAIM) or claims.get("sub")
    if not user:
        raise SignInError("Slack did not say who signed in")
    return str(user)


class SlackSignIn:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.settings = console.settings

    def configured(self) -> bool:
        return bool(self.settings.slack_client_id and self.settings.slack_client_secret)

    async def start(self, request: Request) -> Response:
        if not self.configured():
            return self.console.render(
                request,
                "signin.html",
                None,
                status=404,
                reason="Sign in with Slack needs SLACK_CLIENT_ID and SLACK_CLIENT_SECRET",
            )
        state = secrets.token_urlsafe(24)
        query = {
            "response_type": "code",
            "scope": SCOPES,
            "client_id": self.settings.slack_client_id,
            "state": state,
            "nonce": secrets.token_urlsafe(16),
            "redirect_uri": redirect_uri(request),
        }
        response = RedirectResponse(authorize_url(self.settings) + "?" + urlencode(query), status_code=303)
        response.set_cookie(
            STATE_COOKIE,
            state,
            max_age=600,
            path="/console/auth/slack",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="lax",
        )
        return response

    async def callback(self, request: Request) -> Response:
        state = request.query_params.get("state") or ""
        expected = request.cookies.get(STATE_COOKIE) or ""
        code = request.query_params.get("code") or ""
        if not self.configured():
            return self.console.render(request, "signin.html", None, status=404, reason="Sign in with Slack is off")
        if not state or not expected or not hmac.compare_digest(state.encode(), expected.encode()) or not code:
            return self.console.render(
                request,
                "signin.html",
                None,
                status=401,
                reason="the sign-in expired or was not started here: try again",
            )
        try:
            user = await run_in_threadpool(exchange, self.settings, code=code, redirect=redirect_uri(request))
        except SignInError as exc:
            log.info(kv("slack_sign_in_refused", reason=str(exc)))
            return self.console.render(request, "signin.html", None, status=401, reason=str(exc))
        me = Principal(user, self.console.keyring.is_admin(user), "session")
        response = sign_in(self.console, request, me)
        response.delete_cookie(STATE_COOKIE, path="/console/auth/slack")
        return response


def routes(console: Console) -> list[Route]:
    flow = SlackSignIn(console)
    return [
        Route("/auth/slack", flow.start, methods=["GET"]),
        Route("/auth/slack/callback", flow.callback, methods=["GET"]),
    ]
