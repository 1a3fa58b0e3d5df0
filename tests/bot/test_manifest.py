"""The Slack app manifests ask for exactly what the bot uses, and match its commands, shortcuts and events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.listeners import agent, shortcuts

SLACK_DIR = Path(__file__).resolve().parents[2] / "slack"


def load(name: str) -> dict[str, Any]:
    return json.loads((SLACK_DIR / name).read_text())


@pytest.mark.parametrize("name", ["manifest.json", "manifest.http.json"])
def test_manifest_matches_the_app(name: str) -> None:
    manifest = load(name)
    features, settings = manifest["features"], manifest["settings"]
    assert {c["command"] for c in features["slash_commands"]} == {"/ask", "/lore"}
    assert {s["callback_id"] for s in features["shortcuts"]} == {shortcuts.SAVE, shortcuts.ASK, shortcuts.MARK_ANSWER}
    events = set(settings["event_subscriptions"]["bot_events"])
    assert {
        "app_mention",
        "message.im",
        "message.channels",
        "reaction_added",
        "reaction_removed",
        "app_home_opened",
        "app_context_changed",
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
        "files:read",  # files shared in a thread (url_private_download)
    }
    assert scopes == needed
    assert features["app_home"]["home_tab_enabled"] is True and features["app_home"]["messages_tab_enabled"] is True
    # New apps get the agent messaging experience; assistant_view is on its way out.
    assert "assistant_view" not in features and features["agent_view"]["agent_description"]
    assert features["agent_view"]["suggested_prompts"] == agent.SUGGESTED_PROMPTS


# Every key Slack's app manifest reference (docs.slack.dev/reference/app-manifest, agent_view from
# docs.slack.dev/ai/migrating-to-agent-messaging) lists, by path; "[]" marks the items of a list.
MANIFEST_KEYS = {
    "_metadata": {"major_version", "minor_version"},
    "": {"_metadata", "display_information", "settings", "features", "oauth_config", "functions", "workflows"},
    "display_information": {"name", "description", "long_description", "background_color"},
    "settings": {
        "allowed_ip_address_ranges",
        "event_subscriptions",
        "incoming_webhooks",
        "interactivity",
        "org_deploy_enabled",
        "socket_mode_enabled",
        "token_rotation_enabled",
        "is_hosted",
        "function_runtime",
        "siws_links",
    },
    "settings.event_subscriptions": {"request_url", "bot_events", "user_events", "metadata_subscriptions"},
    "settings.interactivity": {"is_enabled", "request_url", "message_menu_options_url"},
    "features": {
        "app_home",
        "bot_user",
        "shortcuts",
        "slash_commands",
        "unfurl_domains",
        "workflow_steps",
        "assistant_view",
        "agent_view",
        "rich_previews",
    },
    "features.app_home": {"home_tab_enabled", "messages_tab_enabled", "messages_tab_read_only_enabled"},
    "features.bot_user": {"display_name", "always_online"},
    "features.shortcuts[]": {"name", "callback_id", "description", "type"},
    "features.slash_commands[]": {"command", "description", "should_escape", "url", "usage_hint"},
    "features.agent_view": {"agent_description", "suggested_prompts"},
    "features.agent_view.suggested_prompts[]": {"title", "message"},
    "features.assistant_view": {"assistant_description", "suggested_prompts"},
    "oauth_config": {"scopes", "redirect_urls", "token_management_enabled"},
    "oauth_config.scopes": {"bot", "user"},
}


def _unknown_keys(value: Any, path: str = "") -> list[str]:
    if isinstance(value, list):
        return [bad for item in value for bad in _unknown_keys(item, path + "[]")]
    if not isinstance(value, dict) or path not in MANIFEST_KEYS:
        return []  # a leaf (or a list of strings: scopes, events)
    bad = [f"{path}.{key}".lstrip(".") for key in value if key not in MANIFEST_KEYS[path]]
    for key, item in value.items():
        bad += _unknown_keys(item, f"{path}.{key}".lstrip("."))
    return bad


@pytest.mark.parametrize("name", ["manifest.json", "manifest.http.json"])
def test_every_manifest_key_is_one_slack_lists(name: str) -> None:
    assert _unknown_keys(load(name)) == []
    # The check itself catches a key Slack does not know (a typo, or the assistant pane's key under agent_view).
    assert _unknown_keys({"features": {"agent_view": {"assistant_description": "x"}}}) == [
        "features.agent_view.assistant_description"
    ]


def test_socket_and_http_flavours() -> None:
    socket_mode, http = load("manifest.json"), load("manifest.http.json")
    assert socket_mode["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in socket_mode["settings"]["event_subscriptions"]
    assert http["settings"]["socket_mode_enabled"] is False
    urls = [http["settings"]["event_subscriptions"]["request_url"], http["settings"]["interactivity"]["request_url"]]
    urls += [c["url"] for c in http["features"]["slash_commands"]]
    assert all(url.endswith("/slack/events") and url.startswith("https://") for url in urls)
