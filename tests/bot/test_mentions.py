"""Mentions, DMs and thread follow-ups over real signed HTTP: one answer each, in the thread, with history."""

from __future__ import annotations

from harness.polling import wait_until
from harness.slack_api import BOT_ID, BOT_USER_ID, FakeSlack
from harness.slack_signing import app_mention, message
from lore.db import raw_connection
from tests.bot.conftest import RunningBot, ScriptedAnswerer, final_message, settle, thread_posts


def _answer_row(bot: RunningBot, answer_id: int) -> tuple[str | None, str | None, str | None]:
    with raw_connection(bot.settings) as conn:
        row = conn.execute(
            "SELECT channel_id, message_ts, thread_ts FROM answers WHERE id = %s", (answer_id,)
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def test_mention_is_answered_once_in_its_thread_with_citations_and_buttons(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    response = bot.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts="1600000100.000100"))
    assert response.status_code == 200
    posted = fake_slack.wait_for("chat.postMessage")[0]
    assert posted["channel"] == "C0GENERAL" and posted["thread_ts"] == "1600000100.000100"
    assert answerer.calls[0]["question"] == "how do we deploy?"
    asker = answerer.calls[0]["asker"]
    assert asker.channel_id == "C0GENERAL" and asker.user_id == "U0ASKER" and not asker.is_dm
    blocks = posted["blocks"]
    assert blocks[0]["type"] == "markdown" and "**make deploy**" in blocks[0]["text"]  # Slack renders Markdown
    citations = next(b for b in blocks if b["type"] == "context")
    assert citations["elements"][0]["text"] == "<https://docs.example.com/deploy|[1] Deploy guide>"
    actions = next(b for b in blocks if b["type"] == "actions")
    answer_id = int(actions["elements"][0]["value"])
    assert [e["action_id"] for e in actions["elements"]] == ["lore_regenerate"]
    feedback = next(b for b in blocks if b["type"] == "context_actions")["elements"][0]
    assert feedback["type"] == "feedback_buttons" and feedback["action_id"] == "lore_feedback"
    assert (feedback["positive_button"]["value"], feedback["negative_button"]["value"]) == (
        f"up:{answer_id}",
        f"down:{answer_id}",
    )
    # The answers row now points at the Slack message (reactions on it find it).
    message_ts = fake_slack.replies[("C0GENERAL", "1600000100.000100")][0]["ts"]
    wait_until(lambda: _answer_row(bot, answer_id) == ("C0GENERAL", message_ts, "1600000100.000100"))


def test_retries_and_message_plus_mention_pairs_answer_once(bot: RunningBot, fake_slack: FakeSlack) -> None:
    mention = app_mention(f"<@{BOT_USER_ID}> where is the runbook?", ts="1600000200.000200")
    first = bot.sender.event(mention, event_id="EvRETRY0001")
    retry = bot.sender.event(mention, event_id="EvRETRY0001", retry_num=1)
    # The same post as a `message` event (message.channels) carries a different event id.
    same_post = message(f"<@{BOT_USER_ID}> where is the runbook?", ts="1600000200.000200")
    pair = bot.sender.event(same_post, event_id="EvPAIR00001")
    assert [first.status_code, retry.status_code, pair.status_code] == [200, 200, 200]
    fake_slack.wait_for("chat.postMessage")
    settle()
    assert len(thread_posts(fake_slack, "1600000200.000200")) == 1


def test_bot_messages_are_never_answered(bot: RunningBot, fake_slack: FakeSlack) -> None:
    root = "1600000300.000300"
    fake_slack.wait_for  # noqa: B018 - the fake is up
    bot.sender.event(app_mention(f"<@{BOT_USER_ID}> first", ts=root))
    fake_slack.wait_for("chat.postMessage")
    other_bot = message("I am a bot", ts="1600000300.000400", thread_ts=root, bot_id="B0OTHER", subtype="bot_message")
    own = message("own post", ts="1600000300.000500", thread_ts=root, user=BOT_USER_ID, bot_id=BOT_ID)
    bot_user = message(f"<@{BOT_USER_ID}> from a bot user", ts="1600000300.000600", thread_ts=root, bot_id="B0X")
    for event in (other_bot, own, bot_user):
        assert bot.sender.event(event).status_code == 200
    settle()
    assert len(thread_posts(fake_slack, root)) == 1


def test_thread_follow_up_without_mention_gets_history(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    root = "1600000400.000100"
    fake_slack.replies[("C0GENERAL", root)].append(
        {"type": "message", "user": "U0ASKER", "ts": root, "text": f"<@{BOT_USER_ID}> how do we deploy?"}
    )
    bot.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts=root))
    fake_slack.wait_for("chat.postMessage")  # the fake adds the bot's answer to the thread's replies
    follow = message("and on Fridays?", ts="1800000400.000900", thread_ts=root)  # after the answer
    fake_slack.replies[("C0GENERAL", root)].append({**follow})
    bot.sender.event(follow)
    fake_slack.wait_for("chat.postMessage", 2)
    second = answerer.calls[1]
    assert second["question"] == "and on Fridays?"
    assert [(t.role, t.text[:20]) for t in second["history"]] == [
        ("user", "how do we deploy?"),
        ("assistant", "Deploys go out with "),
    ]
    # A reply in a thread Lore was never part of, without a mention, is left alone.
    bot.sender.event(message("unrelated", ts="1600000500.000200", thread_ts="1600000500.000100"))
    settle()
    assert len(fake_slack.calls_to("chat.postMessage")) == 2


def test_direct_message_is_answered_with_the_askers_channels(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    fake_slack.memberships["U0ASKER"] = ["C0GENERAL", "G0SECRET"]
    bot.sender.event(message("what is the on-call rota?", channel="D0DM", ts="1600000600.000100", channel_type="im"))
    posted = fake_slack.wait_for("chat.postMessage")[0]
    assert posted["channel"] == "D0DM" and posted["thread_ts"] == "1600000600.000100"
    asker = answerer.calls[0]["asker"]
    assert asker.is_dm and asker.private and list(asker.member_channels) == ["C0GENERAL", "G0SECRET"]
    # A channel the fake reports as private marks the asker private too (exports leave it out).
    fake_slack.private_channels.add("C0HIDDEN")
    bot.sender.event(app_mention(f"<@{BOT_USER_ID}> hi", channel="C0HIDDEN", ts="1600000600.000200"))
    fake_slack.wait_for("chat.postMessage", 2)
    assert answerer.calls[1]["asker"].private is True


def test_failure_posts_an_apology_with_a_reference(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    answerer.fail_with = TimeoutError("the model timed out")
    bot.sender.event(app_mention(f"<@{BOT_USER_ID}> anything?", ts="1600000700.000100"))
    posted = fake_slack.wait_for("chat.postMessage")[0]
    assert posted["thread_ts"] == "1600000700.000100"
    assert "Sorry" in posted["text"] and "reference `" in posted["text"]


def test_long_answers_are_split_into_sections_keeping_the_buttons(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    paragraph = "word " * 150  # 750 characters
    # Paragraphs that differ (the same one again and again is a model looping, and is cut short): about 19,000
    # characters, more than the 12,000 of a message's markdown blocks.
    answerer.reply = lambda question: "\n\n".join(f"{paragraph}(part {n})" for n in range(25))
    bot.sender.event(app_mention(f"<@{BOT_USER_ID}> tell me everything", ts="1600000800.000100"))
    # The answer streams in (posted, then updated): what counts is the message as it finally stands.
    root = "1600000800.000100"
    wait_until(lambda: final_message(fake_slack, "C0GENERAL", root)["blocks"][-1]["type"] == "actions", timeout=30)
    blocks = final_message(fake_slack, "C0GENERAL", root)["blocks"]
    assert blocks[0]["type"] == "markdown" and 11_000 < len(blocks[0]["text"]) <= 12_000
    sections = [b for b in blocks if b["type"] == "section"]
    assert len(sections) >= 3 and all(len(s["text"]["text"]) <= 3000 for s in sections)
    words = blocks[0]["text"].count("word") + sum(s["text"]["text"].count("word") for s in sections)
    assert words == 150 * 25  # nothing lost at the cut
    assert blocks[-1]["type"] == "actions" and blocks[-2]["type"] == "context_actions"


def test_a_thread_that_cannot_be_read_gets_the_apology(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    """The thread's earlier messages come back malformed (a ts that is not a number): no answer can be built,
    and the asker still hears so in the thread."""
    root = "1600000800.000100"
    fake_slack.replies[("C0GENERAL", root)].append(
        {"type": "message", "user": "U0ASKER", "ts": root, "text": f"<@{BOT_USER_ID}> how do we deploy?"}
    )
    bot.sender.event(app_mention(f"<@{BOT_USER_ID}> how do we deploy?", ts=root))
    fake_slack.wait_for("chat.postMessage")
    fake_slack.replies[("C0GENERAL", root)].append({"type": "message", "user": "U0OTHER", "ts": "garbled", "text": "x"})
    follow = message("and on Fridays?", ts="1800000800.000900", thread_ts=root)
    bot.sender.event(follow)
    posted = fake_slack.wait_for("chat.postMessage", 2)[1]
    assert posted["thread_ts"] == root
    assert "Sorry" in posted["text"] and "reference `" in posted["text"]
    assert len(answerer.calls) == 1  # the follow-up never reached the answerer
