"""A human when Lore cannot help, over real signed HTTP with a real worker: "Ask a human" on an "I don't know"
answer (or after a 👎) posts the question, Lore's answer and a link to the escalation channel and tells the asker
who was asked; a person's reply there marked ✅ (or with "Mark as answer") becomes a correction, goes back to the
thread, and is exported as a retrieval eval case."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.escalation import NO_TARGET
from harness.polling import wait_until
from harness.slack_api import BOT_USER_ID, FakeSlack
from harness.slack_signing import app_mention, block_action, message_shortcut
from lore.config import Settings
from lore.db import raw_connection
from lore.exports import build_examples
from tests.bot.conftest import RunningBot, ScriptedAnswerer, settle

HELP = "C0HELP"
RUNBOOK = "https://wiki.example.com/runbooks/rollback"


def _answer(fake: FakeSlack, root: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        for call in fake.calls_to("chat.postMessage") + fake.calls_to("chat.update"):
            if call.get("thread_ts", root) == root and any(b["type"] == "actions" for b in call.get("blocks") or []):
                return call
        return None

    return wait_until(finished, timeout=30)


def _start(start_bot: Callable[..., RunningBot], settings: Settings) -> tuple[RunningBot, ScriptedAnswerer]:
    answerer = ScriptedAnswerer(settings)
    return start_bot(settings, answerer), answerer


def test_dont_know_offers_a_human_whose_marked_reply_becomes_a_correction_and_eval_case(
    start_bot: Callable[..., RunningBot], bot_settings: Settings, fake_slack: FakeSlack, celery_worker: object
) -> None:
    # No passage is similar enough: Lore says it does not know.
    settings = bot_settings.model_copy(update={"min_similarity": 0.99, "escalation_channel": HELP})
    running, _ = _start(start_bot, settings)
    root = "1600012000.000100"
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we roll back a bad release?", ts=root))
    answer = _answer(fake_slack, root)
    buttons = next(b for b in answer["blocks"] if b["type"] == "actions")["elements"]
    assert [b["action_id"] for b in buttons] == ["lore_regenerate", "lore_ask_human"]
    answer_id = int(buttons[1]["value"])
    message_ts = fake_slack.replies[("C0GENERAL", root)][0]["ts"]
    wait_until(lambda: _linked(running, answer_id))
    press = block_action("lore_ask_human", str(answer_id), message_ts=message_ts, response_url=running.response_url)
    assert running.sender.interaction(press).status_code == 200
    told = fake_slack.wait_for("respond")[0]
    assert told["text"] == f"Asked <#{HELP}>." and told["response_type"] == "ephemeral"
    posts = fake_slack.calls_to("chat.postMessage")
    escalation = next(p for p in posts if p["channel"] == HELP)
    assert "how do we roll back a bad release?" in escalation["text"] and "<@U0ASKER>" in escalation["text"]
    assert f"https://test.slack.com/archives/C0GENERAL/p{message_ts}" in escalation["text"]
    assert any(p.get("thread_ts") == root and f"<#{HELP}>" in p["text"] for p in posts)  # the asker is told
    # A second press does not ask again.
    running.sender.interaction(press)
    fake_slack.wait_for("respond", 2)
    assert sum(1 for p in fake_slack.calls_to("chat.postMessage") if p["channel"] == HELP) == 1
    # A person replies in the escalation thread; someone marks it with ✅.
    escalation_ts = fake_slack.history[HELP][0]["ts"]
    reply_ts = "1600012000.000900"
    reply = {
        "type": "message",
        "user": "U0EXPERT",
        "ts": reply_ts,
        "thread_ts": escalation_ts,
        "text": f"Run `make rollback`; the steps are in <{RUNBOOK}|the rollback runbook>.",
    }
    fake_slack.replies[(HELP, reply_ts)].append(reply)
    reaction = {
        "type": "reaction_added",
        "user": "U0ASKER",
        "reaction": "white_check_mark",
        "item_user": "U0EXPERT",
        "item": {"type": "message", "channel": HELP, "ts": reply_ts},
        "event_ts": "1600012001.000100",
    }
    running.sender.event(reaction)
    wait_until(lambda: _corrections(running) == [(answer_id, "U0EXPERT", reply["text"])], timeout=20)
    back = wait_until(
        lambda: [p for p in fake_slack.calls_to("chat.postMessage") if "<@U0EXPERT> answered" in p.get("text", "")]
    )
    assert back[0]["channel"] == "C0GENERAL" and back[0]["thread_ts"] == root
    # The correction is a retrieval eval case: the question, and where the answer is.
    rows = [e.record for e in build_examples(running.settings, "eval")]
    assert rows == [{"query": "how do we roll back a bad release?", "relevant": [RUNBOOK]}]


def test_mark_as_answer_shortcut_and_what_is_refused(
    start_bot: Callable[..., RunningBot], bot_settings: Settings, fake_slack: FakeSlack, celery_worker: object
) -> None:
    running, _ = _start(start_bot, bot_settings)  # no escalation channel configured
    root = "1600012100.000100"
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts=root))
    answer = _answer(fake_slack, root)
    answer_id = int(next(b for b in answer["blocks"] if b["type"] == "actions")["elements"][0]["value"])
    message_ts = fake_slack.replies[("C0GENERAL", root)][0]["ts"]
    wait_until(lambda: _linked(running, answer_id))
    # After a 👎 the offer includes "Ask a human"; with no target set, the presser is told how to set one.
    down = block_action("lore_feedback", f"down:{answer_id}", message_ts=message_ts, response_url=running.response_url)
    running.sender.interaction(down)
    offer = fake_slack.wait_for("respond")[0]
    assert [e["action_id"] for e in offer["blocks"][-1]["elements"]] == ["lore_critique_open", "lore_ask_human"]
    ask = block_action("lore_ask_human", str(answer_id), message_ts=message_ts, response_url=running.response_url)
    running.sender.interaction(ask)
    assert fake_slack.wait_for("respond", 2)[1]["text"] == NO_TARGET
    # "Mark as answer" on a message that is not a reply in an escalation thread records nothing.
    shortcut = message_shortcut(
        "lore_mark_answer", text="just chatting", message_ts="1600012100.000500", response_url=running.response_url
    )
    running.sender.interaction(shortcut)
    assert "Only a person's reply" in fake_slack.wait_for("respond", 3)[2]["text"]
    settle()
    assert _corrections(running) == []


def _linked(running: RunningBot, answer_id: int) -> bool:
    with raw_connection(running.settings) as conn:
        row = conn.execute("SELECT message_ts FROM answers WHERE id = %s", (answer_id,)).fetchone()
    return bool(row and row[0])


def _corrections(running: RunningBot) -> list[tuple[Any, ...]]:
    with raw_connection(running.settings) as conn:
        return [tuple(r) for r in conn.execute("SELECT answer_id, user_id, correction FROM critiques").fetchall()]
