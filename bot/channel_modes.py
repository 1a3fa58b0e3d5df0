"""Channel modes (`/lore config`, admins only, stored in channel_settings): where Lore answers in a channel
(`mention`, the default; `off`; `auto`: top-level questions without a mention, only when the best passage clears
a confidence bar), the uri prefixes its answers there may draw on, and the channel's escalation target."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from lore.config import Settings
from lore.db import raw_connection

log = logging.getLogger(__name__)

MODES = ("mention", "off", "auto")
CONFIG_VIEW = "lore_config"
_PREFIX = re.compile(r"^\S+$")


@dataclass(frozen=True)
class ChannelConfig:
    mode: str = "mention"
    source_prefixes: tuple[str, ...] = field(default=())
    escalation_target: str | None = None


def read_config(settings: Settings, channel_id: str) -> ChannelConfig:
    with raw_connection(settings) as conn:
        row = conn.execute(
            "SELECT mode, source_prefixes, escalation_target FROM channel_settings WHERE channel_id = %s",
            (channel_id,),
        ).fetchone()
    if row is None:
        return ChannelConfig()
    return ChannelConfig(mode=str(row[0]), source_prefixes=tuple(row[1] or ()), escalation_target=row[2])


def save_config(settings: Settings, channel_id: str, config: ChannelConfig) -> None:
    with raw_connection(settings) as conn:
        conn.execute(
            "INSERT INTO channel_settings (channel_id, mode, source_prefixes, escalation_target) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (channel_id) DO UPDATE SET mode = excluded.mode, "
            "source_prefixes = excluded.source_prefixes, escalation_target = excluded.escalation_target, "
            "updated_at = now()",
            (channel_id, config.mode, list(config.source_prefixes), config.escalation_target),
        )


def parse_submission(values: dict[str, Any]) -> tuple[ChannelConfig | None, dict[str, str]]:
    """The modal's state values as a config, or the errors to show next to its fields."""
    mode = (((values.get("mode") or {}).get("mode") or {}).get("selected_option") or {}).get("value") or "mention"
    raw_prefixes = ((values.get("sources") or {}).get("sources") or {}).get("value") or ""
    target = (((values.get("escalation") or {}).get("escalation") or {}).get("value") or "").strip() or None
    prefixes = tuple(line.strip() for line in raw_prefixes.splitlines() if line.strip())
    errors: dict[str, str] = {}
    if mode not in MODES:
        errors["mode"] = "Choose mention, off or auto."
    bad = [p for p in prefixes if not _PREFIX.match(p)]
    if bad:
        errors["sources"] = f"One uri prefix a line, without spaces: {bad[0]!r}"
    if errors:
        return None, errors
    return ChannelConfig(mode=mode, source_prefixes=prefixes, escalation_target=target), {}


def config_view(channel_id: str, current: ChannelConfig) -> dict[str, Any]:
    labels = {
        "mention": "Answer when mentioned (default)",
        "off": "Never answer in this channel",
        "auto": "Answer questions without a mention, when confident",
    }
    options = [{"text": {"type": "plain_text", "text": labels[m]}, "value": m} for m in MODES]
    target: dict[str, Any] = {"type": "plain_text_input", "action_id": "escalation"}
    if current.escalation_target:
        target["initial_value"] = current.escalation_target
    sources: dict[str, Any] = {"type": "plain_text_input", "action_id": "sources", "multiline": True}
    if current.source_prefixes:
        sources["initial_value"] = "\n".join(current.source_prefixes)
    return {
        "type": "modal",
        "callback_id": CONFIG_VIEW,
        "private_metadata": channel_id,
        "title": {"type": "plain_text", "text": "Lore in this channel"},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "mode",
                "label": {"type": "plain_text", "text": "When Lore answers"},
                "element": {
                    "type": "static_select",
                    "action_id": "mode",
                    "options": options,
                    "initial_option": options[MODES.index(current.mode)],
                },
            },
            {
                "type": "input",
                "block_id": "sources",
                "optional": True,
                "label": {"type": "plain_text", "text": "Sources (uri prefixes, one a line; empty: all)"},
                "element": sources,
            },
            {
                "type": "input",
                "block_id": "escalation",
                "optional": True,
                "label": {"type": "plain_text", "text": "Ask a human: channel or user group ID"},
                "element": target,
            },
        ],
    }
