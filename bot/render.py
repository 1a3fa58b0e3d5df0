"""Answer → Slack: Markdown to mrkdwn, long text split into sections, numbered citations, feedback buttons."""

from __future__ import annotations

import json
from typing import Any

from markdown_to_mrkdwn import SlackMarkdownConverter

from lore.types import Answer, Citation

SECTION_LIMIT = 3000  # characters of text in one section block (Slack's limit)
MARKDOWN_LIMIT = 12_000  # characters of all markdown blocks in one message (Slack's limit)
MAX_BLOCKS = 50  # blocks in one message (Slack's limit)
NOTIFICATION_LIMIT = 3000  # the `text` fallback shown in notifications

# Slack's feedback_buttons element; the thumbs buttons of answers posted before it still count.
FEEDBACK = "lore_feedback"
VOTE_UP = "lore_vote_up"
VOTE_DOWN = "lore_vote_down"
REGENERATE = "lore_regenerate"
PREFER = "lore_prefer"
CRITIQUE_OPEN = "lore_critique_open"
CRITIQUE_VIEW = "lore_critique"
ASK_HUMAN = "lore_ask_human"
# "Which source answered it?" after a 👍: one button per source, action ids SOURCE_PICK + its position.
SOURCE_PICK = "lore_source_pick"
SOURCE_PICK_LIMIT = 5  # sources offered (an answer cites three to five)
BUTTON_TEXT_LIMIT = 75  # characters of a button's label (Slack's limit)
BUTTON_VALUE_LIMIT = 2000  # characters of a button's value (Slack's limit)

_converter = SlackMarkdownConverter()


def to_mrkdwn(markdown: str) -> str:
    return _converter.convert(markdown)


def split_text(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, cut at paragraph, then line, then word boundaries."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), -1)
        if cut < limit // 3:
            cut = window.rfind("\n")
        if cut < limit // 3:
            cut = window.rfind(" ")
        if cut < limit // 3:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _citation_text(citation: Citation) -> str:
    title = (citation.title or citation.uri).replace("|", "/").replace(">", ")").replace("<", "(")
    if citation.uri.startswith(("http://", "https://")):
        return f"<{citation.uri}|[{citation.number}] {title}>"
    return f"[{citation.number}] {title} (`{citation.uri}`)"


def citation_blocks(citations: list[Citation]) -> list[dict[str, Any]]:
    """One context block of numbered links (a context block holds at most 10 elements)."""
    if not citations:
        return []
    elements: list[dict[str, Any]] = []
    for citation in citations[:10]:
        elements.append({"type": "mrkdwn", "text": _citation_text(citation)[:SECTION_LIMIT]})
    return [{"type": "context", "block_id": "lore_citations", "elements": elements}]


def _button(action_id: str, label: str, value: str) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": label}, "value": value}


def _feedback_button(text: str, label: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text}, "accessibility_label": label, "value": value}


def feedback_value(value: str) -> tuple[int, int] | None:
    """(vote, answer id) from a feedback button's value ("up:12" / "down:12"); None when malformed."""
    kind, _, answer = value.partition(":")
    if kind not in ("up", "down") or not answer.isdigit():
        return None
    return (1 if kind == "up" else -1), int(answer)


def ask_human_button(answer_id: int) -> dict[str, Any]:
    return _button(ASK_HUMAN, "Ask a human", str(answer_id))


def feedback_blocks(answer_id: int | None, *, knows: bool = True) -> list[dict[str, Any]]:
    """Slack's own feedback buttons (a context_actions block), then Regenerate (and "Ask a human" when Lore
    said it does not know)."""
    if answer_id is None:
        return []
    value = str(answer_id)
    return [
        {
            "type": "context_actions",
            "block_id": "lore_feedback",
            "elements": [
                {
                    "type": "feedback_buttons",
                    "action_id": FEEDBACK,
                    "positive_button": _feedback_button("Good answer", "Mark this answer as helpful", f"up:{value}"),
                    "negative_button": _feedback_button("Bad answer", "Mark this answer as unhelpful", f"down:{value}"),
                }
            ],
        },
        {
            "type": "actions",
            "block_id": "lore_actions",
            "elements": [_button(REGENERATE, "Regenerate", value)] + ([] if knows else [ask_human_button(answer_id)]),
        },
    ]


def tail_blocks(answer: Answer) -> list[dict[str, Any]]:
    """What follows the answer text: citations, then the feedback buttons."""
    return citation_blocks(answer.citations) + feedback_blocks(answer.answer_id, knows=answer.knows)


def text_blocks(markdown: str) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": piece}} for piece in split_text(to_mrkdwn(markdown))]


def markdown_blocks(markdown: str) -> list[dict[str, Any]]:
    """The answer as Slack renders Markdown itself: one markdown block of up to 12,000 characters (Slack's limit
    for all markdown blocks of a message), the rest split into mrkdwn sections."""
    pieces = split_text(markdown, MARKDOWN_LIMIT)
    if not pieces:
        return []
    rest = markdown.strip()[len(pieces[0]) :].strip()
    return [{"type": "markdown", "text": pieces[0]}, *text_blocks(rest)]


def answer_blocks(answer: Answer) -> list[dict[str, Any]]:
    """The whole answer message; text that would exceed Slack's block count is cut, never the buttons."""
    tail = tail_blocks(answer)
    sections = markdown_blocks(answer.text) or [{"type": "section", "text": {"type": "mrkdwn", "text": "_(empty)_"}}]
    room = MAX_BLOCKS - len(tail)
    if len(sections) > room:
        cut = {"type": "context", "elements": [{"type": "mrkdwn", "text": "… (cut)"}]}
        sections = [*sections[: room - 1], cut]
    return sections + tail


def notification_text(markdown: str) -> str:
    text = to_mrkdwn(markdown)
    return text if len(text) <= NOTIFICATION_LIMIT else text[: NOTIFICATION_LIMIT - 1] + "…"


def comparison_blocks(first_id: int, second_id: int) -> list[dict[str, Any]]:
    """The "Which is better?" prompt after a regeneration: each button names the chosen and rejected answer."""

    def button(action_id: str, label: str, chosen: int, rejected: int) -> dict[str, Any]:
        return {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": label},
            "value": json.dumps({"chosen": chosen, "rejected": rejected}),
        }

    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Which is better?*"}},
        {
            "type": "actions",
            "block_id": "lore_compare",
            "elements": [
                button(PREFER, "The first answer", first_id, second_id),
                button(f"{PREFER}_second", "The new answer", second_id, first_id),
            ],
        },
    ]


def critique_offer_blocks(answer_id: int) -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Thanks — noted. Want to say what was wrong?"}},
        {
            "type": "actions",
            "block_id": "lore_critique_offer",
            "elements": [
                {
                    "type": "button",
                    "action_id": CRITIQUE_OPEN,
                    "text": {"type": "plain_text", "text": "What was wrong?"},
                    "value": str(answer_id),
                },
                ask_human_button(answer_id),
            ],
        },
    ]


def source_pick_blocks(answer_id: int, sources: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """After a 👍 on an answer with several sources: which one answered it? One button per (uri, title); none
    (an empty list) when there is nothing to choose between. A source whose uri does not fit a button's value is
    left out."""
    buttons: list[dict[str, Any]] = []
    for uri, title in sources:
        value = json.dumps({"answer_id": answer_id, "uri": uri})
        if len(value) > BUTTON_VALUE_LIMIT:
            continue
        label = (title or uri).strip()
        if len(label) > BUTTON_TEXT_LIMIT:
            label = label[: BUTTON_TEXT_LIMIT - 1].rstrip() + "…"
        buttons.append(
            {
                "type": "button",
                "action_id": f"{SOURCE_PICK}_{len(buttons)}",
                "text": {"type": "plain_text", "text": label},
                "value": value,
            }
        )
        if len(buttons) == SOURCE_PICK_LIMIT:
            break
    if len(buttons) < 2:
        return []
    return [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "Thanks — noted. Which source answered it? (optional: it teaches Lore which page to put first)",
            },
        },
        {"type": "actions", "block_id": "lore_source_pick", "elements": buttons},
    ]


def critique_view(answer_id: int) -> dict[str, Any]:
    """The optional 👎 dialog: what was wrong, and (optionally) the right answer."""
    return {
        "type": "modal",
        "callback_id": CRITIQUE_VIEW,
        "private_metadata": str(answer_id),
        "title": {"type": "plain_text", "text": "Improve this answer"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "critique",
                "label": {"type": "plain_text", "text": "What was wrong?"},
                "element": {"type": "plain_text_input", "action_id": "text", "multiline": True},
            },
            {
                "type": "input",
                "block_id": "correction",
                "optional": True,
                "label": {"type": "plain_text", "text": "What is the right answer? (optional)"},
                "element": {"type": "plain_text_input", "action_id": "text", "multiline": True},
            },
        ],
    }
