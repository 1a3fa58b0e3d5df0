"""The Slack app manifests ask for exactly what the bot uses, and match its commands, shortcuts and events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.listeners import shortcuts

SLACK_DIR = Path(__file__).resolve().parents[2] / "slack"


def load(name: str) -> dict[str, Any]:
    return json.loads((SLACK_DIR / name).read_text())


@pytest.mark.parametrize("name", ["manifest.json", "manifest.http.json"])
def test_manifest_matches_the_app(name: str) -> None:
    manifest = load(name)
    features, settings = manifest["features"], manifest["settings"]
    assert {c["command"] for c in features["slash_commands"]} == {"/ask", "/lore"}
    assert {s["callback_id"] for s in features["shortcuts"]} == {shortcuts.SAVE, shortcuts.ASK}
    events = set(settings["event_subscriptions"]["bot_events"])
    assert {
        "app_mention",
        "message.im",
        "message.channels",
        "reaction_added",
        "reaction_removed",
        "app_home_opened",
        "assistant_thread_started",
    } <= events
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    # Each event needs its scope; nothing is asked for that the bot does not use.
    needed = {
        "app_mentions:read",
        "im:history",
        "channels:history",
        "groups:history",
        "reactions:read",
        "commands",
        "chat:write",
        "assistant:write",
        "channels:read",
        "groups:read",
        "im:read",
    }
    assert scopes == needed
    assert features["app_home"]["home_tab_enabled"] is True and "assistant_view" in features


def test_socket_and_http_flavours() -> None:
    socket_mode, http = load("manifest.json"), load("manifest.http.json")
    assert socket_mode["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in socket_mode["settings"]["event_subscriptions"]
    assert http["settings"]["socket_mode_enabled"] is False
    urls = [http["settings"]["event_subscriptions"]["request_url"], http["settings"]["interactivity"]["request_url"]]
    urls += [c["url"] for c in http["features"]["slash_commands"]]
    assert all(url.endswith("/slack/events") and url.startswith("https://") for url in urls)
