"""App Home: what the knowledge base holds, this week's answers and votes, the most downvoted for admins."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot import queries
from bot.listeners.agent import on_messages_tab
from bot.metrics import EVENTS
from bot.state import bot_state

log = logging.getLogger(__name__)


def home_view(figures: dict[str, Any], *, admin: bool) -> dict[str, Any]:
    named = figures["sources_named_week"]
    last = figures["last_sync"].strftime("%Y-%m-%d %H:%M UTC") if figures["last_sync"] else "never"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Lore"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Documents*\n{figures['documents']}"},
                {"type": "mrkdwn", "text": f"*Chunks*\n{figures['chunks']}"},
                {"type": "mrkdwn", "text": f"*Sources*\n{figures['sources']}"},
                {"type": "mrkdwn", "text": f"*Last sync*\n{last}"},
            ],
        },
        {"type": "divider"},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*This week*: {figures['answers_week']} answers · "
                f"{figures['up_week']} 👍 · {figures['down_week']} 👎 · "
                f"{named} source{'' if named == 1 else 's'} named",
            },
        },
    ]
    if admin:
        lines = [
            f"• {row['down']} 👎 — {str(row['question'])[:150]} (answer #{row['answer_id']})"
            for row in figures["downvoted"]
        ]
        blocks += [
            {"type": "divider"},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*Most downvoted answers*\n" + ("\n".join(lines) or "None yet.")},
            },
        ]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "Mention @Lore, DM it, or `/ask`."}]})
    return {"type": "home", "blocks": blocks}


def register(app: App) -> None:
    app.event("app_home_opened")(on_home_opened)


def on_home_opened(event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    EVENTS.labels("app_home_opened").inc()
    if event.get("tab") == "messages":
        on_messages_tab(event, client, context)  # the agent messaging experience's conversation tab
        return
    if event.get("tab", "home") != "home":
        return
    settings = bot_state(context).settings
    user_id = event["user"]
    admin = user_id in settings.csv("admin_users")
    figures = queries.home_figures(settings, with_downvoted=admin)
    client.views_publish(user_id=user_id, view=home_view(figures, admin=admin))
