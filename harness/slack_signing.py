"""Send real Slack payloads, signed with the signing secret, over HTTP to a running bot (`lore serve --http`).

Events go as JSON, slash commands form-encoded, interactivity as a form field `payload=` holding JSON,
exactly as Slack sends them; the signature is Slack's v0 HMAC-SHA256 over `v0:{timestamp}:{body}`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx

TEAM_ID = "T0TEAM"
API_APP_ID = "A0LORE"
_ids = itertools.count(1)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackSender:
    """Posts signed requests to `{base_url}/slack/events` like Slack's servers do."""

    def __init__(self, base_url: str, secret: str, *, timeout: float = 10.0) -> None:
        self.url = base_url.rstrip("/") + "/slack/events"
        self.secret = secret
        self.http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def post_raw(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        retry_num: int | None = None,
        sign: bool = True,
    ) -> httpx.Response:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts}
        if sign:
            headers["X-Slack-Signature"] = signature(secret or self.secret, ts, body)
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return self.http.post(self.url, content=body, headers=headers)

    def event(self, event: dict[str, Any], *, event_id: str | None = None, **kwargs: Any) -> httpx.Response:
        """An Events API `event_callback` envelope around `event`."""
        envelope = event_envelope(event, event_id=event_id)
        return self.post_raw(json.dumps(envelope).encode(), "application/json", **kwargs)

    def command(self, command: str, text: str, **fields: Any) -> httpx.Response:
        form = slash_command(command, text, **fields)
        return self.post_raw(urlencode(form).encode(), "application/x-www-form-urlencoded")

    def interaction(self, payload: dict[str, Any], **kwargs: Any) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post_raw(body, "application/x-www-form-urlencoded", **kwargs)


def slash_command(command: str, text: str, **fields: Any) -> dict[str, Any]:
    """A slash command's fields, as Slack posts them form-encoded over HTTP (and as the payload in Socket Mode)."""
    return {
        "token": "legacy-unused",
        "team_id": TEAM_ID,
        "team_domain": "test",
        "channel_id": "C0GENERAL",
        "channel_name": "general",
        "user_id": "U0ASKER",
        "user_name": "asker",
        "command": command,
        "text": text,
        "api_app_id": API_APP_ID,
        "response_url": "https://hooks.slack.com/commands/T0TEAM/1/abc",
        "trigger_id": "1.2.abc",
        **fields,
    }


def event_envelope(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    n = next(_ids)
    return {
        "token": "legacy-unused",
        "team_id": TEAM_ID,
        "api_app_id": API_APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{n:08d}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM_ID, "user_id": "UBOTLORE", "is_bot": True}],
        "is_ext_shared_channel": False,
        "event_context": f"ctx-{n}",
    }


def app_mention(
    text: str, *, channel: str = "C0GENERAL", ts: str, user: str = "U0ASKER", thread_ts: str | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "team": TEAM_ID,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message(
    text: str,
    *,
    channel: str = "C0GENERAL",
    ts: str,
    user: str = "U0ASKER",
    thread_ts: str | None = None,
    channel_type: str = "channel",
    **extra: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "channel_type": channel_type,
        "team": TEAM_ID,
        **extra,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def block_action(
    action_id: str,
    value: str,
    *,
    channel: str = "C0GENERAL",
    message_ts: str,
    user: str = "U0ASKER",
    response_url: str,
    thread_ts: str | None = None,
    text: str = "",
) -> dict[str, Any]:
    """A button press as Slack posts it (`text`: the button's label, which Slack sends back with the press)."""
    message_body: dict[str, Any] = {"type": "message", "ts": message_ts, "user": "UBOTLORE", "bot_id": "BBOTLORE"}
    if thread_ts:
        message_body["thread_ts"] = thread_ts
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "asker", "team_id": TEAM_ID},
        "api_app_id": API_APP_ID,
        "token": "legacy-unused",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": "1.2.trigger",
        "team": {"id": TEAM_ID, "domain": "test"},
        "channel": {"id": channel, "name": "general"},
        "message": message_body,
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "lore_feedback",
                "type": "button",
                "text": {"type": "plain_text", "text": text or action_id, "emoji": True},
                "value": value,
                "action_ts": str(time.time()),
            }
        ],
    }


def message_shortcut(
    callback_id: str,
    *,
    text: str,
    message_ts: str,
    channel: str = "C0GENERAL",
    user: str = "U0ASKER",
    thread_ts: str | None = None,
    response_url: str,
) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "message", "user": "U0AUTHOR", "ts": message_ts, "text": text}
    if thread_ts:
        msg["thread_ts"] = thread_ts
    return {
        "type": "message_action",
        "token": "legacy-unused",
        "action_ts": str(time.time()),
        "team": {"id": TEAM_ID, "domain": "test"},
        "user": {"id": user, "name": "asker"},
        "channel": {"id": channel, "name": "general"},
        "callback_id": callback_id,
        "trigger_id": "1.2.trigger",
        "message_ts": message_ts,
        "message": msg,
        "response_url": response_url,
    }
