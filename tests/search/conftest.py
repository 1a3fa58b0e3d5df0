"""A small knowledge base for search tests: public documents, a private channel's canary, a duplicate."""

from __future__ import annotations

import pytest

from harness.kb import add_document
from lore.config import Settings

CANARY = "BLUEFALCON-7731"
PRIVATE_CHANNEL = "C0SECRET"


def build_kb(settings: Settings) -> dict[str, int]:
    ids = {}
    ids["onboarding"] = add_document(
        settings,
        uri="https://wiki.example.com/onboarding",
        title="Onboarding guide",
        sections=[
            ("VPN", "To connect to the VPN from home, install WireGuard and import the profile from the IT portal."),
            ("Laptop", "New laptops are ordered by your manager two weeks before your start date."),
            ("Holidays", "Request holidays in the HR tool at least two weeks in advance; your manager approves."),
        ],
    )
    ids["runbook"] = add_document(
        settings,
        uri="https://wiki.example.com/deploy-runbook",
        title="Deploy runbook",
        sections=[
            ("Deploy", "Deploy the API with `make release`; the pipeline runs tests, builds the image and rolls out."),
            ("Rollback", "If the deploy fails with error ERR_4711, roll back with `make rollback VERSION=previous`."),
        ],
    )
    ids["copy"] = add_document(
        settings,
        uri="https://mirror.example.com/onboarding-copy",
        title="Onboarding guide (mirror)",
        sections=[
            ("VPN", "To connect to the VPN from home, install WireGuard and import the profile from the IT portal."),
        ],
    )
    ids["private"] = add_document(
        settings,
        uri="slack://C0SECRET/launch",
        title="Launch plan",
        sections=[("Launch", f"The secret launch codename for the new product is {CANARY}; launch is in March.")],
        acl=[PRIVATE_CHANNEL],
    )
    return ids


@pytest.fixture
def kb(db: Settings) -> dict[str, int]:
    return build_kb(db)
