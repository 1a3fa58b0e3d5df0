"""Fake credentials that look like real ones, so a leak into a log, an output or an export is recognisable."""

from __future__ import annotations

from collections.abc import Sequence

BOT_TOKEN = "xoxb-CANARY-1111-2222-botTokenLeakCheck"
APP_TOKEN = "xapp-CANARY-1-A0LORE-3333-appTokenLeakCheck"
SIGNING_SECRET = "CANARYsigningSecret0123456789abcd"
OPENAI_KEY = "sk-CANARY-openaiKeyLeakCheck-4444"
SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, OPENAI_KEY)


def find_secrets(text: str, secrets: Sequence[str] = SECRETS) -> list[str]:
    """The secrets that occur in `text` (a canary's distinctive middle part too, in case it was truncated)."""
    found = [s for s in secrets if s in text]
    found += [f"CANARY fragment of {s[:5]}…" for s in secrets if "CANARY" in s and s not in text and s[5:21] in text]
    return found
