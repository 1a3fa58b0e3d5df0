"""A local fake of Slack's Web API: answers like Slack, records every call, can rate-limit on demand.

Point Lore at it with SLACK_API_URL (subprocesses) or `settings.model_copy(update={"slack_api_url": fake.url})`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from harness.local_server import LocalServer
from harness.polling import wait_until

BOT_USER_ID = "UBOTLORE"
BOT_ID = "BBOTLORE"
TEAM_ID = "T0TEAM"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    authorization: str | None = None


@dataclass
class _Failure:
    status: int
    retry_after: int
    error: str
    times: int


@dataclass
class FakeSlack(LocalServer):
    """The server's state. Tests read `.calls` and fill `.history` / `.replies` / `.memberships`."""

    calls: list[Call] = field(default_factory=list)
    # channel -> messages (any order; served newest first like Slack)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    # (channel, thread_ts) -> messages, parent first
    replies: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    # user -> channel ids the user is a member of (users.conversations)
    memberships: dict[str, list[str]] = field(default_factory=dict)
    private_channels: set[str] = field(default_factory=set)
    # Files behind url_private_download, by path (see file_url); a path not here answers 404.
    files: dict[str, bytes] = field(default_factory=dict)
    # channel -> user ids in it (conversations.members)
    channel_members: dict[str, list[str]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Sign in with Slack: the user who approves at openid/connect/authorize (None: the user cancels) and their
    # workspace, and the codes (with the nonce of the authorize request) and tokens handed out for it.
    oidc_user: str | None = None
    oidc_team: str = TEAM_ID
    oidc_codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # code -> (user, team, nonce)
    oidc_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (user, team)
    _failures: dict[str, _Failure] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _thread_name = "fake-slack"

    # -- lifecycle ------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        return Handler

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeSlack is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    # -- test controls --------------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c.params for c in self.calls if c.method == method]

    def methods(self) -> list[str]:
        with self._lock:
            return [c.method for c in self.calls]

    def fail(
        self, method: str, *, status: int = 429, retry_after: int = 1, error: str = "ratelimited", times: int = 1
    ) -> None:
        """The next `times` calls to `method` fail with `status` (429 carries Retry-After)."""
        with self._lock:
            self._failures[method] = _Failure(status, retry_after, error, times)

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until `method` was called at least `count` times; return those calls."""

        def enough() -> list[dict[str, Any]]:
            found = self.calls_to(method)
            return found if len(found) >= count else []

        try:
            return wait_until(enough, timeout=timeout, what=f"{count} call(s) to {method}")
        except AssertionError:
            raise AssertionError(
                f"{method} called {len(self.calls_to(method))} times, expected {count}: {self.methods()}"
            ) from None

    def next_ts(self) -> str:
        return f"{1700000000 + next(self._ts)}.{next(self._ts):06d}"

    # -- the server -----------------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        method = request.path.rsplit("/", 1)[-1].split("?", 1)[0]
        if request.path.startswith("/openid/connect/authorize"):
            self._authorize(request)
            return
        if request.path.startswith("/files-pri/"):
            self._download(request)
            return
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length).decode("utf-8") if length else ""
        params: dict[str, Any]
        if "application/json" in (request.headers.get("Content-Type") or ""):
            params = json.loads(raw or "{}")
        else:
            query = raw or (request.path.split("?", 1)[1] if "?" in request.path else "")
            params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
            for key in ("blocks", "attachments", "view", "metadata", "chunks"):
                if isinstance(params.get(key), str):
                    with contextlib.suppress(ValueError):
                        params[key] = json.loads(params[key])
        with self._lock:
            self.calls.append(Call(method, params, request.headers.get("Authorization")))
            failure = self._failures.get(method)
            if failure is not None:
                failure.times -= 1
                if failure.times <= 0:
                    del self._failures[method]
        if failure is not None:
            body = json.dumps({"ok": False, "error": failure.error}).encode()
            request.send_response(failure.status)
            if failure.status == 429:
                request.send_header("Retry-After", str(failure.retry_after))
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
            return
        authorization = request.headers.get("Authorization") or ""
        if method == "openid.connect.userInfo":  # the token comes as a Bearer header
            params.setdefault("token", authorization.removeprefix("Bearer ").strip())
        if method == "openid.connect.token" and authorization.startswith("Basic "):  # client id:secret, as Slack takes
            import base64

            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
            params.setdefault("client_id", client_id)
            params.setdefault("client_secret", secret)
        response = self._respond(method, params)
        body = json.dumps(response).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def _respond(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "team_id": TEAM_ID,
                "user": "lore",
                "team": "Test Team",
                "url": "https://test.slack.com/",
            }
        if method in ("chat.postMessage", "chat.startStream"):
            ts = self.next_ts()
            message = {
                "type": "message",
                "ts": ts,
                "text": p.get("text", ""),
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "blocks": p.get("blocks"),
            }
            channel = str(p.get("channel", ""))
            if p.get("thread_ts"):
                message["thread_ts"] = p["thread_ts"]
                with self._lock:
                    self.replies[(channel, str(p["thread_ts"]))].append(message)
            with self._lock:
                self.history[channel].append(message)
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method in ("chat.update", "chat.appendStream", "chat.stopStream"):
            return {"ok": True, "channel": p.get("channel"), "ts": p.get("ts"), "text": p.get("text", "")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self.next_ts()}
        if method == "conversations.history":
            messages = sorted(self.history.get(str(p.get("channel")), []), key=lambda m: float(m["ts"]), reverse=True)
            oldest = float(p.get("oldest") or 0)
            messages = [m for m in messages if float(m["ts"]) > oldest]
            return self._page(messages, p, "messages")
        if method == "conversations.replies":
            key = (str(p.get("channel")), str(p.get("ts")))
            return self._page(list(self.replies.get(key, [])), p, "messages")
        if method == "conversations.info":
            channel = str(p.get("channel", ""))
            return {
                "ok": True,
                "channel": {
                    "id": channel,
                    "is_im": channel.startswith("D"),
                    "is_private": channel in self.private_channels or channel.startswith("G"),
                    "name": channel.lower(),
                },
            }
        if method == "users.conversations":
            channels = self.memberships.get(str(p.get("user", "")), [])
            return {"ok": True, "channels": [{"id": c} for c in channels], "response_metadata": {"next_cursor": ""}}
        if method == "conversations.members":
            channel = str(p.get("channel", ""))
            if channel not in self.channel_members:
                return {"ok": False, "error": "channel_not_found"}
            return self._page(list(self.channel_members[channel]), p, "members")
        if method == "users.info":
            user = str(p.get("user", ""))
            return {"ok": True, "user": self.users.get(user, {"id": user, "name": user.lower(), "is_bot": False})}
        if method == "openid.connect.token":
            grant = self.oidc_codes.pop(str(p.get("code", "")), None)
            if grant is None or not p.get("client_secret"):
                return {"ok": False, "error": "invalid_code"}
            user, team, nonce = grant
            token = f"xoxp-oidc-{next(self._ts)}"
            self.oidc_tokens[token] = (user, team)
            id_token = self.id_token(user=user, team=team, nonce=nonce, audience=str(p.get("client_id", "")))
            return {"ok": True, "access_token": token, "token_type": "Bearer", "id_token": id_token}
        if method == "openid.connect.userInfo":
            return self._user_info(p)
        if method == "chat.getPermalink":
            return {
                "ok": True,
                "permalink": f"https://test.slack.com/archives/{p.get('channel')}/p{p.get('message_ts')}",
            }
        # views.publish/open/update, reactions.add, assistant.threads.*, and anything else: accepted.
        return {"ok": True}

    def file_url(self, file_id: str, name: str) -> str:
        """A url_private_download on this server, as Slack's file host shapes them."""
        return self.url.removesuffix("api/") + f"files-pri/{TEAM_ID}-{file_id}/download/{name}"

    def _download(self, request: BaseHTTPRequestHandler) -> None:
        """A file download (recorded as the pseudo-method files.download with the path and Authorization)."""
        with self._lock:
            self.calls.append(Call("files.download", {"path": request.path}, request.headers.get("Authorization")))
        data = self.files.get(request.path)
        request.send_response(200 if data is not None else 404)
        request.send_header("Content-Type", "application/octet-stream")
        request.send_header("Content-Length", str(len(data or b"")))
        request.end_headers()
        request.wfile.write(data or b"")

    def _authorize(self, request: BaseHTTPRequestHandler) -> None:
        """Slack's authorize page, approved at once by `oidc_user`: back to redirect_uri with a code and the state."""
        from urllib.parse import urlencode

        query = {k: v[0] for k, v in parse_qs(request.path.split("?", 1)[1] if "?" in request.path else "").items()}
        with self._lock:
            self.calls.append(Call("openid.connect.authorize", query))
        if self.oidc_user is None:
            back = {"error": "access_denied", "state": query.get("state", "")}
        else:
            code = f"code-{next(self._ts)}"
            self.oidc_codes[code] = (self.oidc_user, self.oidc_team, query.get("nonce", ""))
            back = {"code": code, "state": query.get("state", "")}
        request.send_response(302)
        request.send_header("Location", query.get("redirect_uri", "/") + "?" + urlencode(back))
        request.send_header("Content-Length", "0")
        request.end_headers()

    def _user_info(self, p: dict[str, Any]) -> dict[str, Any]:
        found = self.oidc_tokens.get(str(p.get("token") or ""))
        if found is None:
            return {"ok": False, "error": "invalid_auth"}
        user, team = found
        return {"ok": True, "sub": user, "https://slack.com/user_id": user, "https://slack.com/team_id": team}

    def id_token(self, *, user: str, team: str, nonce: str, audience: str) -> str:
        """An id token shaped as Slack's (a JWT with its claims; the signature is a stand-in, which Lore, taking
        the token straight from the token endpoint over TLS, does not check)."""
        import base64
        import time

        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        now = int(time.time())
        claims = {
            "iss": self.url.removesuffix("/api/"), "sub": user, "aud": audience, "exp": now + 3600, "iat": now,
            "auth_time": now, "nonce": nonce, "https://slack.com/user_id": user, "https://slack.com/team_id": team,
        }  # fmt: skip
        return f"{part({'typ': 'JWT', 'alg': 'RS256', 'kid': 'fake'})}.{part(claims)}.c2lnbmF0dXJl"

    @staticmethod
    def _page(items: list[Any], p: dict[str, Any], key: str) -> dict[str, Any]:
        limit = int(p.get("limit") or 100)
        start = int(p.get("cursor") or 0)
        page = items[start : start + limit]
        next_cursor = str(start + limit) if start + limit < len(items) else ""
        return {"ok": True, key: page, "has_more": bool(next_cursor), "response_metadata": {"next_cursor": next_cursor}}
