"""Slack's feedback buttons on answers, over real signed HTTP with a real worker: a press is a vote exactly as a
reaction is (one per user and answer, the latest wins), the same press again withdraws it, reactions keep
working, and a press on a deleted answer gets a notice instead of a crash."""

from __future__ import annotations

import time
from typing import Any

from bot.listeners.actions import CLEARED, GONE, THANKS
from harness.polling import wait_until
from harness.slack_api import BOT_ID, BOT_USER_ID, FakeSlack
from harness.slack_signing import app_mention, block_action, message
from tests.bot.conftest import RunningBot, final_message, settle
from tests.bot.test_feedback import _reaction, _votes


def feedback_press(answer_id: int, ts: str, kind: str, *, user: str, response_url: str) -> dict[str, Any]:
    """A block_actions payload for a feedback_buttons press (the button's value, as Slack sends it back)."""
    payload = block_action("lore_feedback", f"{kind}:{answer_id}", message_ts=ts, user=user, response_url=response_url)
    action: dict[str, Any] = payload["actions"][0]
    action.update({"type": "feedback_buttons", "text": {"type": "plain_text", "text": "Good answer"}})
    return payload


def press(bot: RunningBot, answer_id: int, ts: str, kind: str, *, user: str = "U0ASKER") -> None:
    payload = feedback_press(answer_id, ts, kind, user=user, response_url=bot.response_url)
    assert bot.sender.interaction(payload).status_code == 200


def _ask(bot: RunningBot, fake: FakeSlack, root: str) -> tuple[int, str]:
    bot.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts=root))
    fake.wait_for("chat.postMessage")
    posted = final_message(fake, "C0GENERAL", root)
    feedback = next(b for b in posted["blocks"] if b["type"] == "context_actions")["elements"][0]
    answer_id = int(feedback["positive_button"]["value"].split(":")[1])
    return answer_id, posted["ts"]


def test_feedback_buttons_vote_like_reactions_and_a_second_press_withdraws(
    bot: RunningBot, fake_slack: FakeSlack, celery_worker: object
) -> None:
    answer_id, ts = _ask(bot, fake_slack, "1600010000.000100")
    wait_until(lambda: _linked(bot, fake_slack, answer_id, ts))
    press(bot, answer_id, ts, "up")
    wait_until(lambda: _votes(bot) == [(answer_id, "U0ASKER", 1, "button")])
    assert fake_slack.wait_for("respond")[0]["text"] == THANKS
    # The latest press wins, and a 👎 offers the "what was wrong?" dialog as the old button did.
    press(bot, answer_id, ts, "down")
    wait_until(lambda: _votes(bot) == [(answer_id, "U0ASKER", -1, "button")])
    offer = fake_slack.wait_for("respond", 2)[1]
    assert offer["blocks"][-1]["elements"][0]["action_id"] == "lore_critique_open"
    # The same button again withdraws the vote.
    press(bot, answer_id, ts, "down")
    wait_until(lambda: _votes(bot) == [])
    assert fake_slack.wait_for("respond", 3)[2]["text"] == CLEARED
    # Another user's press is their own vote; reactions keep working beside the buttons.
    press(bot, answer_id, ts, "up", user="U0OTHER")
    bot.sender.event(_reaction("reaction_added", "+1", ts=ts, user="U0VOTER"))
    wait_until(lambda: _votes(bot) == [(answer_id, "U0OTHER", 1, "button"), (answer_id, "U0VOTER", 1, "reaction")])


def test_a_press_on_a_deleted_answer_gets_a_notice(
    bot: RunningBot, fake_slack: FakeSlack, celery_worker: object
) -> None:
    answer_id, ts = _ask(bot, fake_slack, "1600010100.000100")
    wait_until(lambda: _linked(bot, fake_slack, answer_id, ts))
    deleted = message(
        "",
        ts="1600010100.000900",
        subtype="message_deleted",
        hidden=True,
        deleted_ts=ts,
        previous_message={"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": ts, "text": "Deploys…"},
    )
    del deleted["user"]
    bot.sender.event(deleted)
    wait_until(lambda: not _linked(bot, fake_slack, answer_id, ts))
    press(bot, answer_id, ts, "up")
    notice = fake_slack.wait_for("respond")[0]
    assert notice["text"] == GONE and notice["response_type"] == "ephemeral"
    settle()
    assert _votes(bot) == []
    # The bot is still up: the next question is answered.
    bot.sender.event(app_mention(f"<@{BOT_USER_ID}> still there?", ts=f"{int(time.time())}.000100"))
    fake_slack.wait_for("chat.postMessage", 2)


def _linked(bot: RunningBot, fake: FakeSlack, answer_id: int, ts: str) -> bool:
    from lore.db import raw_connection

    with raw_connection(bot.settings) as conn:
        row = conn.execute("SELECT message_ts FROM answers WHERE id = %s", (answer_id,)).fetchone()
    return bool(row and row[0] == ts)
