"""Files in the conversation, over real signed HTTP: the thread's files are downloaded with the bot token from
Slack's file host only, parsed by the ingest parsers and cited by file name (and page, for a PDF) in that thread's
answers alone, never stored; images go to a model that can see them (LORE_VISION); each file that cannot be read
gets one line naming it, and the answer uses the rest."""

from __future__ import annotations

import base64
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

from harness.polling import wait_until
from harness.slack_api import BOT_USER_ID, FakeSlack
from harness.slack_signing import app_mention, message
from lore.config import Settings
from lore.db import raw_connection
from tests.bot.conftest import RunningBot, ScriptedAnswerer
from tests.ingest.helpers import make_pdf

ROLLOUT = b"# Rollout\n\nThe rollout window for the payments service is Tuesday 14:00 to 16:00 UTC, never Fridays.\n"


def _ts(offset: float = 0.0) -> str:
    return f"{time.time() + offset:.6f}"


def slack_file(fake: FakeSlack, file_id: str, name: str, *, filetype: str, mimetype: str, **extra: Any) -> dict:
    """A `files` entry in the shape of a message event's files (docs.slack.dev, file object)."""
    return {
        "id": file_id,
        "name": name,
        "title": name,
        "mimetype": mimetype,
        "filetype": filetype,
        "size": 120,
        "mode": "hosted",
        "url_private": fake.file_url(file_id, name).replace("/download", ""),
        "url_private_download": fake.file_url(file_id, name),
        **extra,
    }


def _finished_answer(fake: FakeSlack) -> dict[str, Any]:
    """The answer message as it finally stands (posted or updated with its feedback buttons); empty until then."""
    for call in fake.calls_to("chat.postMessage") + fake.calls_to("chat.update"):
        if any(b.get("type") == "context_actions" for b in call.get("blocks") or []):
            return call
    return {}


def test_files_with_a_question_are_sources_of_that_thread_only(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    other_host = FakeSlack().__enter__()  # stands for any host that is not Slack's: it must never see the token
    try:
        good = slack_file(fake_slack, "F0ROLL", "rollout.md", filetype="markdown", mimetype="text/markdown")
        fake_slack.files[good["url_private_download"][good["url_private_download"].index("/files-pri/") :]] = ROLLOUT
        files = [
            good,
            slack_file(fake_slack, "F0GONE", "missing.pdf", filetype="pdf", mimetype="application/pdf"),
            slack_file(fake_slack, "F0BAD", "broken.pdf", filetype="pdf", mimetype="application/pdf"),
            {
                **slack_file(fake_slack, "F0EVIL", "notes.txt", filetype="text", mimetype="text/plain"),
                "url_private_download": other_host.file_url("F0EVIL", "notes.txt"),
            },
            slack_file(fake_slack, "F0IMG", "diagram.png", filetype="png", mimetype="image/png"),
            slack_file(fake_slack, "F0ZIP", "bundle.zip", filetype="zip", mimetype="application/zip"),
            slack_file(fake_slack, "F0BIG", "huge.pdf", filetype="pdf", mimetype="application/pdf", size=30 * 2**20),
        ]
        broken = files[2]["url_private_download"]
        fake_slack.files[broken[broken.index("/files-pri/") :]] = b"%PDF-1.7 this is not really a PDF"
        root = _ts()
        question = app_mention(f"<@{BOT_USER_ID}> when is the rollout window?", ts=root) | {"files": files}
        bot.sender.event(question)
        wait_until(lambda: len(fake_slack.calls_to("chat.postMessage")) >= 2, timeout=30)
        notes = fake_slack.calls_to("chat.postMessage")[0]
        lines = notes["text"].splitlines()
        assert notes["thread_ts"] == root and len(lines) == 6, lines
        for name, why in [
            ("missing.pdf", "download failed"),
            ("broken.pdf", "corrupt"),
            ("notes.txt", "not on Slack's file host"),
            ("diagram.png", "cannot read images"),
            ("bundle.zip", "archive"),
            ("huge.pdf", "larger than the 20 MB limit"),
        ]:
            assert any(line.startswith(f"{name}: not read") and why in line for line in lines), (name, lines)
        # The answer used the readable file, cited by its name.
        sources = answerer.calls[0]["extra_sources"]
        assert sources and {s.hit.title for s in sources} == {"rollout.md"}
        assert "Tuesday 14:00" in sources[0].hit.text
        final = wait_until(lambda: _finished_answer(fake_slack), timeout=30)
        citations = next(b for b in final["blocks"] if b["type"] == "context")
        assert "rollout.md" in citations["elements"][0]["text"]
        # The token went to Slack's file host only: never to another host, and big or unreadable kinds never fetched.
        assert other_host.calls == []
        downloads = fake_slack.calls_to("files.download")
        assert sorted(d["path"].rsplit("/", 1)[1] for d in downloads) == ["broken.pdf", "missing.pdf", "rollout.md"]
        assert {c.authorization for c in fake_slack.calls if c.method == "files.download"} == {"Bearer xoxb-test-token"}
    finally:
        other_host.__exit__(None, None, None)
    # Never stored in the knowledge base, and never a source of another thread's answer.
    with raw_connection(bot.settings) as conn:
        stored = conn.execute("SELECT count(*) FROM chunks WHERE text LIKE '%%Tuesday 14:00%%'").fetchone()
    assert stored is not None and stored[0] == 0
    bot.sender.event(app_mention(f"<@{BOT_USER_ID}> when is the rollout window?", ts=_ts(1)))
    wait_until(lambda: len(answerer.calls) == 2, timeout=30)
    assert answerer.calls[1]["extra_sources"] == []


def test_files_earlier_in_the_thread_are_read_until_deleted_or_past_retention(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    good = slack_file(fake_slack, "F0ROLL", "rollout.md", filetype="markdown", mimetype="text/markdown")
    fake_slack.files[good["url_private_download"][good["url_private_download"].index("/files-pri/") :]] = ROLLOUT
    root = _ts(-60)
    shared = {"type": "message", "user": "U0ASKER", "ts": root, "text": "here is the plan", "files": [good]}
    fake_slack.replies[("C0GENERAL", root)].append(shared)
    follow = message(f"<@{BOT_USER_ID}> when is the rollout window?", ts=_ts(), thread_ts=root)
    bot.sender.event(follow)
    wait_until(lambda: len(answerer.calls) == 1, timeout=30)
    assert {s.hit.title for s in answerer.calls[0]["extra_sources"]} == {"rollout.md"}
    # The message is deleted (Slack no longer lists it in the thread): its file is forgotten with it.
    fake_slack.replies[("C0GENERAL", root)].remove(shared)
    bot.sender.event(message(f"<@{BOT_USER_ID}> and again?", ts=_ts(1), thread_ts=root))
    wait_until(lambda: len(answerer.calls) == 2, timeout=30)
    assert answerer.calls[1]["extra_sources"] == []
    # A file shared longer ago than the retention period (24 h by default) is not read either.
    old = _ts(-2 * 24 * 3600)
    fake_slack.replies[("C0GENERAL", old)].append({**shared, "ts": old})
    bot.sender.event(message(f"<@{BOT_USER_ID}> and the old one?", ts=_ts(2), thread_ts=old))
    wait_until(lambda: len(answerer.calls) == 3, timeout=30)
    assert answerer.calls[2]["extra_sources"] == []
    assert fake_slack.calls_to("files.download") and len(fake_slack.calls_to("files.download")) == 1


def test_a_pdf_is_cited_by_file_name_and_the_page_the_answer_is_on(
    bot: RunningBot, fake_slack: FakeSlack, answerer: ScriptedAnswerer
) -> None:
    report = make_pdf(
        ["Quarterly report.", "Revenue grew twelve percent in the third quarter."],
        ["Operations.", "The rollout window for the payments service is Tuesday 14:00 to 16:00 UTC."],
        ["People.", "Two engineers joined the platform team in September."],
    )
    pdf = slack_file(fake_slack, "F0PDF", "report.pdf", filetype="pdf", mimetype="application/pdf", size=len(report))
    fake_slack.files[pdf["url_private_download"][pdf["url_private_download"].index("/files-pri/") :]] = report
    root = _ts()
    bot.sender.event(app_mention(f"<@{BOT_USER_ID}> when is the rollout window?", ts=root) | {"files": [pdf]})
    wait_until(lambda: len(answerer.calls) == 1, timeout=30)
    # Each page is a source of its own, labelled with its page; the closest one (page 2) comes first, as [1].
    sources = answerer.calls[0]["extra_sources"]
    assert (sources[0].hit.uri, sources[0].hit.title) == ("slack-file:F0PDF#page=2", "report.pdf, p. 2")
    assert "Tuesday 14:00" in sources[0].hit.text and "Revenue" not in sources[0].hit.text
    assert {s.hit.title for s in sources} == {"report.pdf, p. 1", "report.pdf, p. 2", "report.pdf, p. 3"}
    final = wait_until(lambda: _finished_answer(fake_slack), timeout=30)
    citations = next(b for b in final["blocks"] if b["type"] == "context")["elements"]
    assert [c["text"] for c in citations if "report.pdf" in c["text"]] == [
        "[1] report.pdf, p. 2 (`slack-file:F0PDF#page=2`)"
    ]


def tiny_png() -> bytes:
    """A real one-pixel PNG, built by hand (signature, IHDR, IDAT, IEND): no imaging library needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def _share_images(fake: FakeSlack) -> list[dict[str, Any]]:
    """A real PNG, one over the 5 MB image limit, and a "PNG" whose bytes are no image."""
    png, not_png = tiny_png(), b"<html>an error page, not an image</html>"
    files = [
        slack_file(fake, "F0IMG", "diagram.png", filetype="png", mimetype="image/png", size=len(png)),
        slack_file(fake, "F0HUGE", "poster.png", filetype="png", mimetype="image/png", size=6 * 2**20),
        slack_file(fake, "F0FAKE", "fake.png", filetype="png", mimetype="image/png", size=len(not_png)),
    ]
    for f, data in [(files[0], png), (files[2], not_png)]:
        fake.files[f["url_private_download"][f["url_private_download"].index("/files-pri/") :]] = data
    return files


def _human_parts(answerer: ScriptedAnswerer) -> list[Any]:
    """The content of the human message of the answer's (first) model call, as content parts."""
    wait_until(lambda: answerer.models and answerer.models[0].seen, timeout=30)
    content = [m for m in answerer.models[0].seen[0] if m.type == "human"][-1].content
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def test_an_image_goes_to_a_model_that_can_see_it(
    start_bot: Callable[..., RunningBot], bot_settings: Settings, fake_slack: FakeSlack
) -> None:
    # gpt-4o reads images (LORE_VISION=auto decides by the model's name); the chain path, as the scripted model
    # binds no tools.
    settings = bot_settings.model_copy(update={"chat_model": "gpt-4o", "agent_mode": "chain"})
    answerer = ScriptedAnswerer(settings)
    running = start_bot(settings, answerer)
    files = _share_images(fake_slack)
    root = _ts()
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> what does this diagram show?", ts=root) | {"files": files})
    parts = _human_parts(answerer)
    image = f"data:image/png;base64,{base64.b64encode(tiny_png()).decode()}"
    assert {"type": "image_url", "image_url": {"url": image}} in parts
    assert any(p["type"] == "text" and "what does this diagram show?" in p["text"] for p in parts)
    assert [p["type"] for p in parts].count("image_url") == 1
    notes = fake_slack.wait_for("chat.postMessage")[0]["text"].splitlines()
    assert notes == [
        "poster.png: not read, it is larger than the 5 MB limit.",
        "fake.png: not read, it is not a PNG, JPEG, GIF or WebP image.",
    ]
    downloads = fake_slack.calls_to("files.download")
    assert sorted(d["path"].rsplit("/", 1)[1] for d in downloads) == ["diagram.png", "fake.png"]
    wait_until(lambda: _finished_answer(fake_slack), timeout=30)


def test_an_image_gets_one_line_when_vision_is_off(
    start_bot: Callable[..., RunningBot], bot_settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = bot_settings.model_copy(update={"chat_model": "gpt-4o", "agent_mode": "chain", "vision": "off"})
    answerer = ScriptedAnswerer(settings)
    running = start_bot(settings, answerer)
    files = _share_images(fake_slack)[:1]
    running.sender.event(app_mention(f"<@{BOT_USER_ID}> what does this diagram show?", ts=_ts()) | {"files": files})
    parts = _human_parts(answerer)
    assert "image_url" not in [p["type"] for p in parts] and answerer.calls[0]["images"] == []
    notes = fake_slack.wait_for("chat.postMessage")[0]["text"]
    assert notes == "diagram.png: not read, it is an image, and Lore cannot read images."
    assert fake_slack.calls_to("files.download") == []
