"""Feedback from Slack: buttons, reactions (with retries and removal), "Which source answered it?", the critique
dialog, Regenerate and "Which is better?", and deletion, through the real endpoint, Celery worker and PostgreSQL."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

from harness.kb import add_document
from harness.polling import wait_until
from harness.slack_api import BOT_USER_ID, FakeSlack
from harness.slack_signing import API_APP_ID, TEAM_ID, app_mention, block_action, message
from lore.config import Settings
from lore.db import raw_connection
from tests.bot.conftest import RunningBot, ScriptedAnswerer, final_message, settle


def _ask(bot: RunningBot, fake: FakeSlack, root: str) -> tuple[int, str]:
    """Ask via a mention; return the answer id and the ts of its Slack message once it is linked."""
    bot.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts=root))
    fake.wait_for("chat.postMessage")
    posted = final_message(fake, "C0GENERAL", root)
    answer_id = int(posted["blocks"][-1]["elements"][0]["value"])
    wait_until(lambda: _rows(bot, "SELECT message_ts FROM answers WHERE id = %s", answer_id) == [(posted["ts"],)])
    return answer_id, posted["ts"]


def _rows(bot: RunningBot, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with raw_connection(bot.settings) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]


def _votes(bot: RunningBot) -> list[tuple[Any, ...]]:
    return _rows(bot, "SELECT answer_id, user_id, value, via FROM votes ORDER BY user_id")


_EVENT_CLOCK = itertools.count(1)


def _reaction(kind: str, reaction: str, *, ts: str, user: str = "U0VOTER", item_user: str = BOT_USER_ID) -> dict:
    return {
        "type": kind,
        "user": user,
        "reaction": reaction,
        "item_user": item_user,
        "item": {"type": "message", "channel": "C0GENERAL", "ts": ts},
        "event_ts": f"1600009999.{next(_EVENT_CLOCK):06d}",  # Slack's event time grows with each event
    }


def test_vote_buttons_record_votes_and_thank_ephemerally(
    bot: RunningBot, fake_slack: FakeSlack, celery_worker: object
) -> None:
    answer_id, ts = _ask(bot, fake_slack, "1600003000.000100")
    up = block_action("lore_vote_up", str(answer_id), message_ts=ts, response_url=bot.response_url)
    assert bot.sender.interaction(up).status_code == 200
    wait_until(lambda: _votes(bot) == [(answer_id, "U0ASKER", 1, "button")])
    thanks = fake_slack.wait_for("respond")[0]
    assert thanks["text"] == "Thanks — noted" and thanks["response_type"] == "ephemeral"
    assert thanks["replace_original"] is False
    # The latest vote wins; 👎 also offers the optional "what was wrong?" dialog.
    down = block_action("lore_vote_down", str(answer_id), message_ts=ts, response_url=bot.response_url)
    bot.sender.interaction(down)
    wait_until(lambda: _votes(bot) == [(answer_id, "U0ASKER", -1, "button")])
    offer = fake_slack.wait_for("respond", 2)[1]
    button = offer["blocks"][-1]["elements"][0]
    assert button["action_id"] == "lore_critique_open" and button["value"] == str(answer_id)


ROLLBACK_URI, ROLLBACK_TITLE = "https://docs.example.com/rollback", "Rollback runbook"


def _evidence(bot: RunningBot) -> list[tuple[Any, ...]]:
    return _rows(bot, "SELECT d.uri, e.w > 0 FROM feedback_evidence e JOIN documents d ON d.id = e.document_id")


def test_a_thumbs_up_asks_which_source_answered_it_and_the_answer_credits_that_page(
    bot: RunningBot, fake_slack: FakeSlack, celery_worker: object, answerer: ScriptedAnswerer
) -> None:
    add_document(
        bot.settings,
        uri=ROLLBACK_URI,
        title=ROLLBACK_TITLE,
        sections=[(ROLLBACK_TITLE, "To deploy a fix or undo a bad deploy, run make rollback, then deploy again.")],
    )
    answerer.reply = lambda question: "Deploy with **make deploy** [1]; if it goes wrong, **make rollback** [2]."
    answer_id, ts = _ask(bot, fake_slack, "1600003050.000100")
    cited = _rows(bot, "SELECT c->>'uri' FROM answers, jsonb_array_elements(citations) c WHERE id = %s", answer_id)
    assert sorted(u for (u,) in cited) == sorted([ROLLBACK_URI, "https://docs.example.com/deploy"])
    lead = cited[0][0]
    bot.sender.interaction(block_action("lore_vote_up", str(answer_id), message_ts=ts, response_url=bot.response_url))
    wait_until(lambda: _votes(bot) == [(answer_id, "U0ASKER", 1, "button")])
    offer = fake_slack.wait_for("respond")[0]
    assert offer["response_type"] == "ephemeral" and "Which source answered it?" in json.dumps(offer["blocks"])
    buttons = offer["blocks"][-1]["elements"]
    assert [json.loads(b["value"]) for b in buttons] == [{"answer_id": answer_id, "uri": u} for (u,) in cited]
    # Until a source is named, the 👍 credits every source the answer cited inline.
    wait_until(lambda: sorted(_evidence(bot)) == sorted((u, True) for (u,) in cited))
    # The asker says the second source answered it: their 👍 now credits that page alone.
    second = buttons[1]
    bot.sender.interaction(
        block_action(
            second["action_id"],
            second["value"],
            message_ts=ts,
            response_url=bot.response_url,
            text=second["text"]["text"],
        )
    )
    wait_until(
        lambda: (
            _rows(bot, "SELECT answer_id, user_id, source_uri FROM source_picks")
            == [(answer_id, "U0ASKER", cited[1][0])]
        )
    )
    wait_until(lambda: _evidence(bot) == [(cited[1][0], True)])
    confirmed = fake_slack.wait_for("respond", 2)[1]
    assert confirmed["replace_original"] is True and second["text"]["text"] in confirmed["text"]
    # A malformed choice is logged and changes nothing.
    bad = block_action("lore_source_pick_0", "not json", message_ts=ts, response_url=bot.response_url)
    assert bot.sender.interaction(bad).status_code == 200
    # A 👍 by reaction asks too, once per answer and user however often it is toggled.
    bot.sender.event(_reaction("reaction_added", "+1", ts=ts))
    asked = fake_slack.wait_for("chat.postEphemeral")[0]
    assert asked["user"] == "U0VOTER" and asked["thread_ts"] == "1600003050.000100"
    assert [json.loads(b["value"])["uri"] for b in asked["blocks"][-1]["elements"]] == [u for (u,) in cited]
    bot.sender.event(_reaction("reaction_removed", "+1", ts=ts))
    bot.sender.event(_reaction("reaction_added", "+1", ts=ts))
    wait_until(lambda: len(_votes(bot)) == 2)
    settle()
    assert len(fake_slack.calls_to("chat.postEphemeral")) == 1
    # Withdrawing the 👍 withdraws what the pick said; the choice itself is kept for when the 👍 comes back.
    bot.sender.event(_reaction("reaction_removed", "+1", ts=ts))
    bot.sender.interaction(block_action("lore_vote_down", str(answer_id), message_ts=ts, response_url=bot.response_url))
    wait_until(lambda: _evidence(bot) == [(lead, False)])
    assert len(_rows(bot, "SELECT 1 FROM source_picks")) == 1


def test_a_team_can_turn_the_source_question_off(
    start_bot: Callable[..., RunningBot],
    bot_settings: Settings,
    fake_slack: FakeSlack,
    celery_worker: object,
    answerer: ScriptedAnswerer,
) -> None:
    bot = start_bot(bot_settings.model_copy(update={"ask_which_source": False}), answerer)
    add_document(bot.settings, uri=ROLLBACK_URI, title=ROLLBACK_TITLE, sections=[(ROLLBACK_TITLE, "make rollback")])
    answerer.reply = lambda question: "Deploy with **make deploy** [1]; if it goes wrong, **make rollback** [2]."
    answer_id, ts = _ask(bot, fake_slack, "1600003060.000100")
    assert len(_rows(bot, "SELECT jsonb_array_elements(citations) FROM answers WHERE id = %s", answer_id)) == 2
    bot.sender.interaction(block_action("lore_vote_up", str(answer_id), message_ts=ts, response_url=bot.response_url))
    thanks = fake_slack.wait_for("respond")[0]
    assert thanks["text"] == "Thanks — noted" and "blocks" not in thanks
    bot.sender.event(_reaction("reaction_added", "+1", ts=ts))
    wait_until(lambda: len(_votes(bot)) == 2)
    settle()
    assert fake_slack.calls_to("chat.postEphemeral") == []


def test_critique_dialog_opens_and_its_submission_is_stored(
    bot: RunningBot, fake_slack: FakeSlack, celery_worker: object
) -> None:
    answer_id, ts = _ask(bot, fake_slack, "1600003100.000100")
    bot.sender.interaction(
        block_action("lore_critique_open", str(answer_id), message_ts=ts, response_url=bot.response_url)
    )
    view = fake_slack.wait_for("views.open")[0]["view"]
    assert view["callback_id"] == "lore_critique" and view["private_metadata"] == str(answer_id)
    submission = {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "test"},
        "user": {"id": "U0CRITIC", "username": "critic", "team_id": TEAM_ID},
        "api_app_id": API_APP_ID,
        "token": "legacy-unused",
        "trigger_id": "1.2.view",
        "view": {
            **view,
            "id": "V0MODAL",
            "team_id": TEAM_ID,
            "state": {
                "values": {
                    "critique": {"text": {"type": "plain_text_input", "value": "It skipped the review step."}},
                    "correction": {"text": {"type": "plain_text_input", "value": "Get a review, then make deploy."}},
                }
            },
        },
        "response_urls": [],
    }
    response = bot.sender.interaction(submission)
    assert response.status_code == 200 and "errors" not in response.text
    wait_until(
        lambda: (
            _rows(bot, "SELECT answer_id, user_id, critique, correction FROM critiques")
            == [(answer_id, "U0CRITIC", "It skipped the review step.", "Get a review, then make deploy.")]
        )
    )
    # An empty critique is refused inside the dialog.
    empty = json.loads(json.dumps(submission))
    empty["view"]["state"]["values"]["critique"]["text"]["value"] = "  "
    refused = bot.sender.interaction(empty)
    assert refused.status_code == 200 and refused.json()["response_action"] == "errors"


def test_reactions_set_and_remove_votes_once_despite_retries(
    bot: RunningBot, fake_slack: FakeSlack, celery_worker: object
) -> None:
    answer_id, ts = _ask(bot, fake_slack, "1600003200.000100")
    added = _reaction("reaction_added", "+1::skin-tone-3", ts=ts)
    bot.sender.event(added, event_id="EvREACT0001")
    bot.sender.event(added, event_id="EvREACT0001", retry_num=1)
    wait_until(lambda: _votes(bot) == [(answer_id, "U0VOTER", 1, "reaction")])
    bot.sender.event(_reaction("reaction_removed", "+1", ts=ts))
    wait_until(lambda: _votes(bot) == [])
    # 👎 by reaction: a vote, and the dialog offered to that user only.
    bot.sender.event(_reaction("reaction_added", "thumbsdown", ts=ts))
    wait_until(lambda: _votes(bot) == [(answer_id, "U0VOTER", -1, "reaction")])
    offer = fake_slack.wait_for("chat.postEphemeral")[0]
    assert offer["user"] == "U0VOTER" and offer["blocks"][-1]["elements"][0]["value"] == str(answer_id)
    # Toggling 👎 off and on again changes the vote, but the dialog is offered only once.
    bot.sender.event(_reaction("reaction_removed", "thumbsdown", ts=ts))
    wait_until(lambda: _votes(bot) == [])
    bot.sender.event(_reaction("reaction_added", "thumbsdown", ts=ts))
    wait_until(lambda: _votes(bot) == [(answer_id, "U0VOTER", -1, "reaction")])
    settle()
    assert len(fake_slack.calls_to("chat.postEphemeral")) == 1
    # Reactions on other people's messages are not feedback.
    bot.sender.event(_reaction("reaction_added", "+1", ts="1600003200.000100", user="U0OTHER", item_user="U0ASKER"))
    settle()
    assert [v[1] for v in _votes(bot)] == ["U0VOTER"]


def test_regenerate_posts_a_second_answer_and_asks_which_is_better(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer, celery_worker: object
) -> None:
    root = "1600003300.000100"
    first_id, ts = _ask(bot, fake_slack, root)
    answerer.reply = lambda question: f"Use the deploy pipeline [1]. ({question})"
    bot.sender.interaction(
        block_action("lore_regenerate", str(first_id), message_ts=ts, thread_ts=root, response_url=bot.response_url)
    )
    prompt = wait_until(lambda: [c for c in fake_slack.calls_to("chat.postMessage") if c["text"] == "Which is better?"])
    assert prompt[0]["thread_ts"] == root
    second_call = answerer.calls[1]
    assert second_call["parent_id"] == first_id and second_call["question"] == "how do we deploy?"
    assert second_call["generation"]["temperature"] == 0.9 and second_call["generation"]["k"] == 16
    second_id = _rows(bot, "SELECT id FROM answers WHERE parent_id = %s", first_id)[0][0]
    buttons = prompt[0]["blocks"][-1]["elements"]
    assert all(b["action_id"].startswith("lore_prefer") for b in buttons)
    assert [json.loads(b["value"]) for b in buttons] == [
        {"chosen": first_id, "rejected": second_id},
        {"chosen": second_id, "rejected": first_id},
    ]
    choose = block_action(buttons[1]["action_id"], buttons[1]["value"], message_ts=ts, response_url=bot.response_url)
    bot.sender.interaction(choose)
    wait_until(
        lambda: (
            _rows(bot, "SELECT chosen_id, rejected_id, user_id FROM comparisons") == [(second_id, first_id, "U0ASKER")]
        )
    )


def test_repeat_reaction_regenerates(bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer) -> None:
    first_id, ts = _ask(bot, fake_slack, "1600003400.000100")
    bot.sender.event(_reaction("reaction_added", "repeat", ts=ts))
    wait_until(
        lambda: (
            len(answerer.calls) == 2
            and any(c["text"] == "Which is better?" for c in fake_slack.calls_to("chat.postMessage"))
        )
    )
    assert answerer.calls[1]["parent_id"] == first_id


def test_deleting_an_answer_message_forgets_it(bot: RunningBot, fake_slack: FakeSlack) -> None:
    answer_id, ts = _ask(bot, fake_slack, "1600003500.000100")
    deleted = message(
        "",
        ts="1600003600.000100",
        subtype="message_deleted",
        deleted_ts=ts,
        hidden=True,
        previous_message={"type": "message", "ts": ts, "user": BOT_USER_ID, "bot_id": "BBOTLORE", "text": "x"},
    )
    deleted.pop("user")
    bot.sender.event(deleted)
    wait_until(lambda: _rows(bot, "SELECT id FROM answers WHERE id = %s", answer_id) == [])
