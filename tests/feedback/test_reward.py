"""The reward model learns from votes and pairs which answers users prefer, and choose_best uses it."""

from __future__ import annotations

from lore.config import Settings
from lore.feedback import record_comparison, record_vote
from lore.reward import choose_best, model_path, train_reward
from tests.feedback.helpers import add_answer, add_doc

TOPICS = [
    ("How do I deploy the API?", "Run make ship from the repository root to deploy the API [1].", "Deploy: make ship."),
    ("Where are the VPN settings?", "The VPN profile is on the intranet under IT > VPN [1].", "VPN profile: intranet."),
    ("How do I rotate my password?", "Open the SSO portal and choose Change password [1].", "Passwords: SSO portal."),
    ("Who approves expenses?", "Your manager approves expenses in Expensify [1].", "Expenses: manager approval."),
    ("How do I request a laptop?", "File an IT ticket with the Hardware form [1].", "Laptops: IT Hardware form."),
    (
        "Where is the on-call schedule?",
        "The on-call schedule is in PagerDuty, team Platform [1].",
        "On-call: PagerDuty.",
    ),
    ("How do I book a meeting room?", "Book rooms in Google Calendar under Rooms [1].", "Rooms: Google Calendar."),
    ("How do I get database access?", "Request the db-readers group in Okta [1].", "DB access: Okta group."),
    ("What is the release cadence?", "We release every Tuesday after the freeze [1].", "Releases: Tuesdays."),
    (
        "How do I report a security issue?",
        "Email the security team via the #security channel form [1].",
        "Security: form.",
    ),
    (
        "Where do I find the style guide?",
        "The style guide is in the handbook, section Writing [1].",
        "Style: handbook.",
    ),
    (
        "How do I add a new service?",
        "Copy the service template repo and register it in the catalog [1].",
        "Services: template.",
    ),
]
BAD = ["I don't know.", "Bananas are rich in potassium.", "Please ask someone else.", "The weather is nice today."]


def test_reward_model_prefers_grounded_answers_and_choose_best_uses_it(db: Settings) -> None:
    assert choose_best(db, question="q", candidates=["a", "b"], context=[]) == 0  # no model yet
    for n, (question, good_text, source) in enumerate(TOPICS):
        (chunk,) = add_doc(db, uri=f"kb://{n}", title=source, texts=[source])
        good = add_answer(db, question=question, answer=good_text, chunk_ids=[chunk], message_ts=f"{n}.1")
        bad = add_answer(
            db,
            question=question,
            answer=BAD[n % len(BAD)],
            chunk_ids=[chunk],
            message_ts=f"{n}.2",
            thread_ts=f"{n}.1",
            parent_id=good,
        )
        record_vote(db, answer_id=good, user_id="U1", value=1, via="reaction")
        record_vote(db, answer_id=bad, user_id="U1", value=-1, via="reaction")
        record_comparison(db, chosen_id=good, rejected_id=bad, user_id="U1")
    report = train_reward(db)
    assert report["examples"] >= 48 and report["held_out"] > 0
    assert report["accuracy"] >= 0.75
    assert model_path(db).exists()
    index = choose_best(
        db,
        question="How can I ship the web app to production?",
        candidates=["I don't know.", "Run make ship from the repository root [1].", "Bananas are yellow."],
        context=["Deploy: make ship from the repository root."],
    )
    assert index == 1
