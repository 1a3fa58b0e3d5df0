"""Value types shared by search, the agent, the Slack bot and feedback: plain data, no behaviour."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# Defined here, beside the value types, so that the CLI can offer them as choices without importing search or
# the exporters.
SEARCH_MODES = ("vector", "fulltext", "hybrid")
# The dimension of the default offline embedder (all-MiniLM-L6-v2). A different embedder must match it:
# lore.embeddings refuses to write vectors of another size.
EMBEDDING_DIM = 384
# The ACL entry that makes a document visible everywhere.
PUBLIC = "public"
# "eval": retrieval eval cases ({"query", "relevant"} rows for `lore eval retrieval`) from corrections that link
# to their sources, such as a person's answer marked in an "Ask a human" thread.
EXPORT_FORMATS = ("trl-sft", "trl-dpo", "trl-kto", "openai-sft", "openai-dpo", "eval")


class Hit(NamedTuple):
    """One retrieved chunk, as `lore search --json` prints it (plus what the agent needs). A named tuple, not a
    frozen dataclass: every search builds k of them after its reply, and a tuple is built in half the time."""

    chunk_id: int
    document_id: int
    uri: str
    title: str
    heading: str
    text: str
    score: float

    def as_json(self) -> dict[str, Any]:
        return {"chunk_id": self.chunk_id, "uri": self.uri, "title": self.title, "score": self.score, "text": self.text}


@dataclass(frozen=True)
class Citation:
    """A numbered source of an answer: [n] in the text maps to this uri."""

    number: int
    uri: str
    title: str

    def as_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "title": self.title}


@dataclass(frozen=True)
class Turn:
    """One earlier message of a conversation (Slack thread, terminal chat)."""

    role: str  # "user" or "assistant"
    text: str


@dataclass
class Asker:
    """Who asks, from where: decides what they may see and where the answer is recorded.

    In a channel, documents of that channel and public ones are visible; in a DM (`is_dm`), public ones and
    those of `member_channels`, the channels the asker belongs to.
    """

    user_id: str | None = None
    channel_id: str | None = None
    team_id: str | None = None
    thread_ts: str | None = None
    is_dm: bool = False
    member_channels: Sequence[str] = ()
    surface: str = "cli"  # slack, cli, api
    private: bool = False  # the conversation is a private channel or DM (exports exclude it by default)
    # Uri prefixes the answer may draw on (a channel's sources, /lore config), on top of the ACL; empty: any.
    source_prefixes: Sequence[str] = ()

    def visible_acl(self) -> list[str]:
        """ACL entries this asker may see: 'public' plus the channel(s) they are in."""
        entries = ["public"]
        if self.is_dm:
            entries.extend(self.member_channels)
        elif self.channel_id:
            entries.append(self.channel_id)
        return entries


@dataclass
class Answer:
    """What the agent returns; `answer_id` is the `answers` row it was recorded as."""

    answer_id: int | None
    text: str
    citations: list[Citation]
    model: str
    chunk_ids: list[int] = field(default_factory=list)
    generated: bool = True  # False for search-only answers
    knows: bool = True  # False when it said it does not know
    latency_ms: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "answer_id": self.answer_id,
            "answer": self.text,
            "citations": [c.as_json() for c in self.citations],
            "model": self.model,
        }


# Receives answer text as it is generated (Slack streaming, terminal chat).
TokenSink = Callable[[str], None]


@dataclass(frozen=True)
class ImagePart:
    """An image shared with a question (a file in the Slack thread), for a chat model that can see images."""

    name: str
    media_type: str  # image/png, image/jpeg, image/gif or image/webp, as its bytes show
    data: bytes = field(repr=False)


@dataclass
class Outcome:
    """What one answer path produced, before it is recorded as an answers row."""

    text: str
    model: str
    messages: list[dict[str, Any]]
    generated: bool = True
    knows: bool = True
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
