"""Channel modes over real signed HTTP: `/lore config` opens a modal for admins only (a non-admin is told, and a
submission from one is refused); `off` silences Lore in the channel, `auto` answers top-level questions without a
mention only when the best passage clears the bar, and a channel's sources limit what its answers draw on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.polling import wait_until
from harness.slack_api import BOT_USER_ID, FakeSlack
from harness.slack_signing import API_APP_ID, TEAM_ID, app_mention, message
from lore.config import Settings
from tests.bot.conftest import GUIDE_URI, RunningBot, ScriptedAnswerer, settle

ADMIN = "U0ADMIN"


def submission(view: dict[str, Any], user: str, mode: str, sources: str | None = None) -> dict[str, Any]:
    """A view_submission of the config modal, as Slack sends it (state.values by block_id and action_id)."""
    values = {
        "mode": {"mode": {"type": "static_select", "selected_option": {"text": {}, "value": mode}}},
        "sources": {"sources": {"type": "plain_text_input", "value": sources}},
        "escalation": {"escalation": {"type": "plain_text_input", "value": None}},
    }
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
        "api_app_id": API_APP_ID,
        "token": "legacy-unused",
        "trigger_id": "1.2.view",
        "view": {**view, "id": "V0CONFIG", "team_id": TEAM_ID, "state": {"values": values}},
        "response_urls": [],
    }


def configure(running: RunningBot, fake: FakeSlack, mode: str, sources: str | None = None) -> None:
    opened = len(fake.calls_to("views.open"))
    response = running.sender.command("/lore", "config", user_id=ADMIN)
    assert response.status_code == 200
    view = fake.wait_for("views.open", opened + 1)[opened]["view"]
    assert view["callback_id"] == "lore_config" and view["private_metadata"] == "C0GENERAL"
    saved = running.sender.interaction(submission(view, ADMIN, mode, sources))
    assert saved.status_code == 200 and "errors" not in saved.text


def start(start_bot: Callable[..., RunningBot], bot_settings: Settings) -> tuple[RunningBot, ScriptedAnswerer]:
    settings = bot_settings.model_copy(update={"admin_users": ADMIN, "auto_answer_min_similarity": 0.35})
    answerer = ScriptedAnswerer(settings)
    answerer._seed(settings)  # the knowledge base holds the deploy guide before any question
    return start_bot(settings, answerer), answerer


def test_only_admins_configure_a_channel(
    start_bot: Callable[..., RunningBot], bot_settings: Settings, fake_slack: FakeSlack
) -> None:
    running, _ = start(start_bot, bot_settings)
    refused = running.sender.command("/lore", "config", user_id="U0ASKER")
    assert refused.status_code == 200 and "Only Lore's admins" in refused.text
    settle()
    assert fake_slack.calls_to("views.open") == []
    # A submission forged by a non-admin (or from an admin removed since) is refused too.
    configure(running, fake_slack, "mention")
    view = fake_slack.calls_to("views.open")[0]["view"]
    forged = running.sender.interaction(submission(view, "U0ASKER", "off"))
    assert forged.status_code == 200 and '"response_action":"errors"' in forged.text.replace(" ", "")


def test_off_silences_the_channel_and_auto_answers_only_when_confident(
    start_bot: Callable[..., RunningBot], bot_settings: Settings, fake_slack: FakeSlack
) -> None:
    running, answerer = start(start_bot, bot_settings)
    configure(running, fake_slack, "off")
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts="1600011000.000100"))
    settle(1.0)
    assert answerer.calls == [] and fake_slack.calls_to("chat.postMessage") == []
    configure(running, fake_slack, "auto")
    # Top-level, no mention: answered when the knowledge base knows...
    running.sender.event(message("how do deploys go out from the main branch?", ts="1600011000.000200"))
    posted = fake_slack.wait_for("chat.postMessage", timeout=30)[0]
    assert posted["thread_ts"] == "1600011000.000200"
    # ...silent when it does not (the best passage is below the bar).
    running.sender.event(message("anyone up for pizza at the italian place tonight?", ts="1600011000.000300"))
    settle(1.5)
    assert [c["question"] for c in answerer.calls] == ["how do deploys go out from the main branch?"]
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    # Back to mention mode: top-level questions without a mention are left alone again.
    configure(running, fake_slack, "mention")
    running.sender.event(message("how do deploys go out from the main branch?", ts="1600011000.000400"))
    settle(1.0)
    assert len(answerer.calls) == 1


def test_a_channels_sources_limit_what_its_answers_draw_on(
    start_bot: Callable[..., RunningBot], bot_settings: Settings, fake_slack: FakeSlack
) -> None:
    running, answerer = start(start_bot, bot_settings)
    bad = running.sender.command("/lore", "config", user_id=ADMIN)
    assert bad.status_code == 200
    view = fake_slack.wait_for("views.open")[0]["view"]
    invalid = running.sender.interaction(submission(view, ADMIN, "mention", "https://ok.example.com/\nnot a prefix"))
    assert "errors" in invalid.text and "sources" in invalid.text
    configure(running, fake_slack, "mention", "https://handbook.example.com/\n")
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts="1600011100.000100"))
    wait_until(lambda: answerer.calls, timeout=30)
    assert tuple(answerer.calls[0]["asker"].source_prefixes) == ("https://handbook.example.com/",)
    posted = fake_slack.wait_for("chat.postMessage", timeout=30)[0]
    # The deploy guide (docs.example.com) is outside the channel's sources: never cited there.
    assert GUIDE_URI not in str(posted.get("blocks")) and GUIDE_URI not in posted["text"]
