"""The permission canaries: two private channels, each with a document holding its own canary, and a public page on
the same subject. A private document's text reaching someone outside its channel shows up as its canary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harness.kb import add_document
from harness.slack_api import FakeSlack
from lore.config import Settings

SECRET_CHANNEL = "G0SECRET"  # a private channel
OTHER_PRIVATE = "C0PRIVTWO"  # another private channel (its own canary: members of one do not see the other)
CANARIES = {
    SECRET_CHANNEL: ("CANARY-NIGHTJAR-5521", "The launch codename of Project Nightjar is CANARY-NIGHTJAR-5521."),
    OTHER_PRIVATE: ("CANARY-PAYROLL-0937", "The payroll vault passphrase for Project Nightjar is CANARY-PAYROLL-0937."),
}
SECRET_CANARY = CANARIES[SECRET_CHANNEL][0]
OTHER_CANARY = CANARIES[OTHER_PRIVATE][0]
QUESTION = "What is the launch codename of Project Nightjar?"
QUESTION_TWO = "What is the payroll vault passphrase for Project Nightjar?"
PUBLIC_URI = "https://wiki.example.com/nightjar"
MEMBER, OUTSIDER = "U0MEMBER", "U0OUTSIDER"
PUBLIC_SECTIONS = [
    ("Nightjar", "Project Nightjar is the new mobile app; its public name will be announced in March."),
    ("Nightjar > Team", "The Nightjar team sits on the third floor and meets on Tuesdays."),
]


def private_uri(channel: str) -> str:
    return f"slack://{channel}/p1"


def leaked(text: str) -> list[str]:
    """The canaries that occur in `text`."""
    return [canary for canary, _ in CANARIES.values() if canary in text]


def build_canary_kb(
    settings: Settings,
    fake_slack: FakeSlack | None = None,
    *,
    public_sections: Sequence[tuple[str, str]] = PUBLIC_SECTIONS,
    more_members: Mapping[str, list[str]] | None = None,
) -> None:
    """The canary documents, and (given the fake) a Slack where MEMBER is in SECRET_CHANNEL and OUTSIDER in no
    private channel."""
    for channel, (_canary, text) in CANARIES.items():
        add_document(
            settings, uri=private_uri(channel), title=f"{channel} notes", sections=[("Nightjar", text)], acl=[channel]
        )
    add_document(settings, uri=PUBLIC_URI, title="Project Nightjar", sections=list(public_sections))
    if fake_slack is None:
        return
    fake_slack.private_channels.update(CANARIES)
    fake_slack.memberships.update({OUTSIDER: ["C0GENERAL"], MEMBER: ["C0GENERAL", SECRET_CHANNEL]})
    fake_slack.memberships.update(more_members or {})
