"""Put one answer into a Slack thread: streamed where Slack allows, posted then updated otherwise; never silence."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.chat_stream import ChatStream

from bot import dedupe, steps
from bot.metrics import record_answer, record_error
from bot.render import answer_blocks, notification_text, tail_blocks, text_blocks
from bot.state import BotState
from lore.logs import kv
from lore.types import Answer, Asker, ImagePart, Turn

log = logging.getLogger(__name__)

# Slack rate-limits message edits (about one a second per message): stream updates are throttled to that.
UPDATE_INTERVAL_S = 1.0
# chat.appendStream is made for streaming: the first words go at once, then a batch at most this often.
STREAM_INTERVAL_S = 0.25
STREAM_PIECE = 10_000  # markdown_text of one stream call (Slack's limit is 12,000)
APOLOGY = "Sorry — I couldn't answer that just now (reference `{ref}`). Please try again in a moment."


def answer_failed(*, channel_id: str, thread_ts: str, stage: str | None = None) -> str:
    """Count and log (with the traceback: call it from an `except` block) an answer that failed; returns the
    reference the apology shows."""
    ref = uuid.uuid4().hex[:8]
    extra = {"stage": stage} if stage is not None else {}
    log.exception(kv("answer_failed", ref=ref, channel=channel_id, thread_ts=thread_ts, **extra))
    record_error("answer")
    record_answer("failed")
    return ref


def post_apology(client: WebClient, *, channel_id: str, thread_ts: str, ref: str) -> None:
    """The apology as a new message in the thread, for an answer that never started (best effort: a failure to
    post is counted and logged with the same reference)."""
    try:
        client.chat_postMessage(channel=channel_id, thread_ts=thread_ts, text=APOLOGY.format(ref=ref))
    except Exception:
        record_error("apology")
        log.exception(kv("apology_failed", ref=ref, channel=channel_id))


class ThreadPoster:
    """One answer message in a thread. `begin` shows the plan, tokens stream in via `token`; `finish` or `fail`
    closes it. A stream Slack stops taking mid-answer is finished in the same message with chat.update."""

    def __init__(
        self,
        client: WebClient,
        *,
        channel_id: str,
        thread_ts: str,
        team_id: str | None,
        user_id: str | None,
        streaming: bool,
    ) -> None:
        self.client = client
        self.channel_id = channel_id
        self.thread_ts = thread_ts
        self.team_id = team_id
        self.user_id = user_id
        self.streaming = streaming
        self.stream: ChatStream | None = None
        self.broken = False  # Slack refused an append after the stream began: chat.update finishes it
        self.ts: str | None = None
        self.shown = ""  # text already sent to Slack
        self.pending = ""  # text received but not yet sent
        self.writing = False  # the first token arrived (the "writing" step began)
        # The first update waits one interval too: an answer ready within it is posted once, complete.
        self.last_flush = time.monotonic()

    @property
    def streamed(self) -> bool:
        return self.stream is not None and self.stream.ts is not None

    def begin(self) -> None:
        """Open the stream with the plan's first step, so the asker sees Lore searching at once."""
        if self.streaming:
            self._append_stream("", chunks=steps.searching())

    def token(self, text: str) -> None:
        self.pending += text
        if self.streaming and not self.writing:
            self.writing = True
            self.flush(chunks=steps.writing())  # the first words go out at once, later ones in batches
            return
        interval = STREAM_INTERVAL_S if self.streaming else UPDATE_INTERVAL_S
        if time.monotonic() - self.last_flush >= interval:
            self.flush()

    def flush(self, chunks: list[dict[str, Any]] | None = None) -> None:
        if not self.pending:
            return
        self.last_flush = time.monotonic()
        if self.streaming and self._append_stream(self.pending, chunks=chunks):
            self.shown += self.pending
            self.pending = ""
            return
        if self.broken:
            return  # kept for the final chat.update: never half an answer shown as if complete
        self.shown += self.pending
        self.pending = ""
        self._post_or_update(text_blocks(self.shown)[:45], notification_text(self.shown))

    def _append_stream(self, text: str, chunks: list[dict[str, Any]] | None = None) -> bool:
        """Send text (and plan chunks) through the stream; False when Slack refuses it: before the stream began,
        streaming is off from now on (post, then update); after, the stream is broken (chat.update finishes it)."""
        if self.broken:
            return False
        try:
            if self.stream is None:
                self.stream = self.client.chat_stream(
                    channel=self.channel_id,
                    thread_ts=self.thread_ts,
                    recipient_team_id=self.team_id,
                    recipient_user_id=self.user_id,
                    task_display_mode="plan",
                    buffer_size=1,
                )
            pieces = [text[start : start + STREAM_PIECE] for start in range(0, len(text), STREAM_PIECE)] or [""]
            for i, piece in enumerate(pieces):
                self.stream.append(markdown_text=piece or None, chunks=chunks if i == 0 else None)
            self.ts = self.stream.ts
            return True
        except (SlackApiError, SlackRequestError) as exc:
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else str(exc)
            if self.streamed:
                log.warning(kv("stream_broken", channel=self.channel_id, ts=self.stream_ts, error=error))
                self.broken, self.streaming = True, False
                return False
            # Streaming is not available to this app or conversation: post, then update.
            log.info(kv("stream_unavailable", channel=self.channel_id, error=error))
            self.streaming = False
            self.stream = None
            return False

    @property
    def stream_ts(self) -> str | None:
        return self.stream.ts if self.stream is not None else None

    def _post_or_update(self, blocks: list[dict[str, Any]], text: str) -> None:
        if self.ts is None:
            posted = self.client.chat_postMessage(
                channel=self.channel_id, thread_ts=self.thread_ts, text=text, blocks=blocks, unfurl_links=False
            )
            self.ts = str(posted["ts"])
        else:
            self.client.chat_update(channel=self.channel_id, ts=self.ts, text=text, blocks=blocks)

    def finish(self, answer: Answer) -> str:
        """Show the final answer with citations and buttons; return the message ts."""
        if self.streamed and not self.broken:
            try:
                return self._finish_stream(answer)
            except (SlackApiError, SlackRequestError) as exc:
                error = exc.response.get("error") if isinstance(exc, SlackApiError) else str(exc)
                log.warning(kv("stream_broken", channel=self.channel_id, ts=self.stream_ts, error=error))
                self.broken = True
        if self.broken:
            # The same message, whole: chat.update works on a message whose stream Slack ended.
            self.ts = self.stream_ts
        self._post_or_update(answer_blocks(answer), notification_text(answer.text))
        assert self.ts is not None
        return self.ts

    def _finish_stream(self, answer: Answer) -> str:
        assert self.stream is not None and self.stream.ts is not None
        self.flush()
        done = steps.done(answer)
        if self.broken:
            raise SlackRequestError("the stream broke on its last append")
        streamed = self.shown
        if answer.text.startswith(streamed):
            rest = answer.text[len(streamed) :]
            while len(rest) > STREAM_PIECE:
                self.stream.append(markdown_text=rest[:STREAM_PIECE])
                rest = rest[STREAM_PIECE:]
            self.stream.stop(markdown_text=rest or None, chunks=done, blocks=tail_blocks(answer))
        else:
            # The final text is not what was streamed (e.g. rewritten citations): replace the message.
            self.stream.stop(chunks=done, blocks=tail_blocks(answer))
            self.client.chat_update(
                channel=self.channel_id,
                ts=self.stream.ts,
                text=notification_text(answer.text),
                blocks=answer_blocks(answer),
            )
        return self.stream.ts

    def fail(self, apology: str) -> None:
        shown = (self.shown + self.pending).strip()
        text = f"{shown}\n\n{apology}" if shown else apology
        if self.streamed and not self.broken:
            assert self.stream is not None
            try:
                self.stream.stop(markdown_text=("\n\n" if self.shown else "") + apology, chunks=steps.failed())
                return
            except (SlackApiError, SlackRequestError):
                self.broken = True
        if self.broken:
            self.ts = self.stream_ts
        self._post_or_update(text_blocks(text)[:45], notification_text(text))


def answer_in_thread(
    state: BotState,
    client: WebClient,
    *,
    question: str,
    asker: Asker,
    channel_id: str,
    thread_ts: str,
    history: list[Turn] | None = None,
    parent_id: int | None = None,
    generation: dict[str, Any] | None = None,
    extra_sources: list[Any] | None = None,
    images: list[ImagePart] | None = None,
) -> Answer | None:
    """Answer `question` in the thread; on any failure post a short apology with a reference id."""
    started = time.monotonic()
    poster = ThreadPoster(
        client,
        channel_id=channel_id,
        thread_ts=thread_ts,
        team_id=asker.team_id,
        user_id=asker.user_id,
        streaming=state.settings.slack_streaming,
    )
    extra: dict[str, Any] = {}
    if parent_id is not None:
        extra["parent_id"] = parent_id
    if generation is not None:
        extra["generation"] = generation
    if extra_sources:
        extra["extra_sources"] = extra_sources
    if images:
        extra["images"] = images
    try:
        poster.begin()
        answer = state.answerer(
            state.settings, question, asker=asker, history=list(history or []), on_token=poster.token, **extra
        )
        message_ts = poster.finish(answer)
    except Exception:
        ref = answer_failed(channel_id=channel_id, thread_ts=thread_ts)
        try:
            poster.fail(APOLOGY.format(ref=ref))
        except Exception:
            record_error("apology")
            log.exception(kv("apology_failed", ref=ref, channel=channel_id))
        return None
    record_answer("ok", time.monotonic() - started)
    remember_answer(
        state, answer, channel_id=channel_id, message_ts=message_ts, thread_ts=thread_ts, team_id=asker.team_id
    )
    log.info(
        kv(
            "answered",
            answer_id=answer.answer_id,
            channel=channel_id,
            thread_ts=thread_ts,
            ms=int((time.monotonic() - started) * 1000),
        )
    )
    return answer


def remember_answer(
    state: BotState, answer: Answer, *, channel_id: str, message_ts: str, thread_ts: str | None, team_id: str | None
) -> None:
    """Link the answers row to its Slack message (reactions find it so) and note the thread as the bot's."""
    try:
        if thread_ts:
            dedupe.mark(state.settings, dedupe.thread_key(channel_id, thread_ts), kind="thread")
        if answer.answer_id is not None:
            from lore.agent import attach_slack_message

            attach_slack_message(
                state.settings,
                answer.answer_id,
                channel_id=channel_id,
                message_ts=message_ts,
                thread_ts=thread_ts,
                team_id=team_id,
            )
    except Exception:
        record_error("attach")
        log.exception(kv("attach_failed", answer_id=answer.answer_id, channel=channel_id, ts=message_ts))
