"""MCP over streamable HTTP, for `lore serve --http` at /mcp: the SDK's session manager behind Bearer-token auth.

Every request needs `Authorization: Bearer <token>` with an active personal token (lore.tokens); anything else
is answered 401 with the reason, before the MCP server sees the request, so nothing runs. The token's user is
the caller of every tool call that request carries.

Stateless and JSON responses: any replica behind a load balancer can serve any request (no session lives in
one process), and each call is one POST with one JSON reply.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio.to_thread
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.authentication import AuthCredentials, AuthenticationBackend
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from lore.config import Settings
from lore.db import DatabaseError
from lore.logs import kv
from lore.tokens import TokenError, TokenInfo, authenticate
from mcp_server.server import create_server
from mcp_server.tools import Caller

log = logging.getLogger(__name__)

PATH = "/mcp"
SCOPE = "lore"
_REFUSAL = "lore.auth_refusal"


class TokenBackend(AuthenticationBackend):
    """Authenticates `Authorization: Bearer` with lore.tokens; a refusal's reason is kept for the 401."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, AuthenticatedUser] | None:
        header = conn.headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            conn.scope[_REFUSAL] = "missing bearer token: send Authorization: Bearer <a token from `lore token create`>"
            return None
        try:
            info = await anyio.to_thread.run_sync(authenticate, self.settings, token)
        except TokenError as exc:
            conn.scope[_REFUSAL] = str(exc)
            log.info(kv("mcp_token_refused", reason=str(exc).split(":")[0]))
            return None
        except DatabaseError as exc:
            conn.scope[_REFUSAL] = "cannot check the token now: the database is unavailable"
            log.warning(kv("mcp_token_unchecked", error=type(exc).__name__))
            return None
        access = AccessToken(
            token=f"lore-token:{info.id}",  # the secret itself stays out of the request's state
            client_id=f"lore-token:{info.id}",
            scopes=[SCOPE],
            subject=info.user_id,
            claims={
                "token_id": info.id,
                "user_id": info.user_id,
                "admin": info.admin,
                "rate": info.rate_per_minute,
                "key": info.key,
            },
        )
        return AuthCredentials([SCOPE]), AuthenticatedUser(access)


class RequireToken:
    """401 (with the reason, and a WWW-Authenticate challenge) unless the backend authenticated the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if isinstance(scope.get("user"), AuthenticatedUser):
            await self.app(scope, receive, send)
            return
        reason = str(scope.get(_REFUSAL) or "authentication required")
        body = json.dumps({"error": "invalid_token", "error_description": reason}).encode()
        challenge = 'Bearer realm="lore", error="invalid_token", error_description="' + reason.replace('"', "'") + '"'
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", challenge.encode()),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def caller_from_request(ctx: ServerRequestContext[Any, Any]) -> Caller:
    """The caller of an HTTP request: the token the request was authenticated with (checked for this request)."""
    request = ctx.request
    user = getattr(request, "scope", {}).get("user") if request is not None else None
    if not isinstance(user, AuthenticatedUser) or not user.access_token.claims:
        raise TokenError("this request carries no authenticated token")
    claims = user.access_token.claims
    info = TokenInfo(
        id=int(claims["token_id"]),
        user_id=str(claims["user_id"]),
        admin=bool(claims["admin"]),
        rate_per_minute=int(claims["rate"]),
        key=str(claims["key"]),
    )
    return Caller(user_id=info.user_id, token=info)


def mcp_http_app(
    settings: Settings,
) -> tuple[ASGIApp, Callable[[Any], AbstractAsyncContextManager[None]]]:
    """The ASGI app to serve at PATH, and the lifespan the hosting app must run (the SDK's session manager)."""
    server = create_server(settings, resolve_caller=caller_from_request)
    manager = StreamableHTTPSessionManager(
        app=server,
        json_response=True,
        stateless=True,
        # Host/Origin checks defend unauthenticated local servers from DNS rebinding; every request here must
        # carry a Bearer token, which a browser never adds on its own, and Lore runs behind any host name.
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    app = AuthenticationMiddleware(RequireToken(StreamableHTTPASGIApp(manager)), backend=TokenBackend(settings))

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        async with manager.run():
            yield

    return app, lifespan
