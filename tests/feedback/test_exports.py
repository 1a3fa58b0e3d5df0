"""Exports: each trainer's format, prompts as the model saw them, PII scrubbed, private excluded, thread split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lore.config import Settings
from lore.exports import ExportError, build_examples, export_to_files, in_eval, scrub
from lore.feedback import record_comparison, record_critique, record_vote
from tests.feedback.helpers import add_answer, rand_vec

SYSTEM = "You are Lore. Answer from the sources."


def _prompt(question: str, answer: str, context: str = "Deploy with make ship.") -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"<documents>\n{context}\n</documents>\n\nQuestion: {question}"},
        {"role": "assistant", "content": answer},
    ]


def seed(settings: Settings) -> dict[str, int]:
    q = "How do I deploy? ask <@U123ABC> or mail bob@example.com"
    good = add_answer(
        settings,
        embedding=rand_vec(1),
        question=q,
        answer="Run make ship [1].",
        prompt=_prompt(q, "Run make ship [1]."),
        channel_id="C1",
        message_ts="1.1",
    )
    regen = add_answer(
        settings,
        embedding=rand_vec(2),
        question=q,
        answer="Use the deploy button [1].",
        channel_id="C1",
        message_ts="1.2",
        thread_ts="1.1",
        parent_id=good,
        prompt=_prompt(q, "Use the deploy button [1].", "More context."),
    )
    bad = add_answer(
        settings,
        embedding=rand_vec(3),
        question="Where is the VPN profile?",
        answer="Call +1 415-555-2671.",
        prompt=_prompt("Where is the VPN profile?", "Call +1 415-555-2671."),
        channel_id="C2",
        message_ts="2.1",
    )
    private = add_answer(
        settings,
        embedding=rand_vec(4),
        question="secret plans?",
        answer="The plan is X.",
        private=True,
        prompt=_prompt("secret plans?", "The plan is X."),
        channel_id="G1",
        message_ts="3.1",
    )
    record_vote(settings, answer_id=good, user_id="U1", value=1, via="button")
    record_vote(settings, answer_id=good, user_id="U2", value=1, via="reaction")
    record_vote(settings, answer_id=regen, user_id="U3", value=-1, via="button")
    record_vote(settings, answer_id=bad, user_id="U1", value=-1, via="button")
    record_vote(settings, answer_id=private, user_id="U1", value=1, via="button")
    record_comparison(settings, chosen_id=good, rejected_id=regen, user_id="U1")
    record_critique(
        settings,
        answer_id=bad,
        user_id="U1",
        critique="wrong",
        correction="The profile is on the intranet: https://vpn.example.com/profile?token=abc123def456",
    )
    return {"good": good, "regen": regen, "bad": bad, "private": private}


def _roles(messages: list[dict[str, Any]]) -> list[str]:
    return [m["role"] for m in messages]


def test_trl_formats(db: Settings) -> None:
    seed(db)
    sft = [e.record for e in build_examples(db, "trl-sft")]
    # The upvoted answer and the correction; not the private answer, not the downvoted ones.
    assert len(sft) == 2
    for rec in sft:
        assert _roles(rec["messages"]) == ["system", "user", "assistant"]
        assert rec["messages"][0]["content"] == SYSTEM
        assert "<documents>" in rec["messages"][1]["content"]
    assert sft[0]["messages"][-1]["content"] == "Run make ship [1]."
    assert "[REDACTED]" in sft[1]["messages"][-1]["content"] and "abc123def456" not in json.dumps(sft)
    assert "bob@example.com" not in json.dumps(sft) and "<@U123ABC>" not in json.dumps(sft)

    dpo = [e.record for e in build_examples(db, "trl-dpo")]
    assert {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in dpo} == {
        ("Run make ship [1].", "Use the deploy button [1]."),
        (scrub("The profile is on the intranet: https://vpn.example.com/profile?token=abc123def456"), "Call [PHONE]."),
    }
    for rec in dpo:
        assert set(rec) == {"prompt", "chosen", "rejected"}
        assert _roles(rec["prompt"]) == ["system", "user"]
        assert _roles(rec["chosen"]) == _roles(rec["rejected"]) == ["assistant"]

    kto = [e.record for e in build_examples(db, "trl-kto")]
    assert sorted((r["completion"][0]["content"][:12], r["label"]) for r in kto) == [
        ("Call [PHONE]", False),
        ("Run make shi", True),
        ("The profile ", True),
        ("Use the depl", False),
    ]
    assert all(_roles(r["prompt"]) == ["system", "user"] and isinstance(r["label"], bool) for r in kto)


def test_openai_formats(db: Settings) -> None:
    seed(db)
    sft = [e.record for e in build_examples(db, "openai-sft")]
    assert len(sft) == 2 and all(set(r) == {"messages"} and r["messages"][-1]["role"] == "assistant" for r in sft)
    dpo = [e.record for e in build_examples(db, "openai-dpo")]
    assert len(dpo) == 2
    for rec in dpo:
        assert set(rec) == {"input", "preferred_output", "non_preferred_output"}
        assert set(rec["input"]) == {"messages"} and rec["input"]["messages"][-1]["role"] == "user"
        assert rec["preferred_output"][0]["role"] == rec["non_preferred_output"][0]["role"] == "assistant"


def test_private_answers_only_with_include_private(db: Settings) -> None:
    seed(db)
    texts = lambda records: json.dumps([e.record for e in records])  # noqa: E731
    assert "The plan is X." not in texts(build_examples(db, "trl-kto"))
    assert "The plan is X." in texts(build_examples(db, "trl-kto", include_private=True))


def test_agent_transcripts_keep_tool_calls_in_openai_shape(db: Settings) -> None:
    prompt = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Question: how to deploy?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "name": "search_knowledge_base", "args": {"query": "deploy"}}],
        },
        {"role": "tool", "name": "search_knowledge_base", "tool_call_id": "c1", "content": "[1] make ship"},
        {"role": "assistant", "content": "Run make ship [1]."},
    ]
    a = add_answer(
        db,
        embedding=rand_vec(5),
        question="how to deploy?",
        answer="Run make ship [1].",
        prompt=prompt,
        message_ts="9.1",
    )
    record_vote(db, answer_id=a, user_id="U1", value=1, via="button")
    (rec,) = [e.record for e in build_examples(db, "openai-sft")]
    assert _roles(rec["messages"]) == ["system", "user", "assistant", "tool", "assistant"]
    call = rec["messages"][2]["tool_calls"][0]
    assert call == {
        "id": "c1",
        "type": "function",
        "function": {"name": "search_knowledge_base", "arguments": '{"query": "deploy"}'},
    }
    assert rec["messages"][3]["tool_call_id"] == "c1"


def test_split_keeps_threads_whole_and_writes_both_files(db: Settings, tmp_path: Path) -> None:
    for n in range(40):
        a = add_answer(
            db,
            embedding=rand_vec(6),
            question=f"question {n}",
            answer=f"answer {n}",
            channel_id="C1",
            message_ts=f"{n}.1",
            prompt=_prompt(f"question {n}", f"answer {n}"),
        )
        b = add_answer(
            db,
            embedding=rand_vec(7),
            question=f"question {n}",
            answer=f"again {n}",
            channel_id="C1",
            message_ts=f"{n}.2",
            thread_ts=f"{n}.1",
            parent_id=a,
            prompt=_prompt(f"question {n}", f"again {n}"),
        )
        record_vote(db, answer_id=a, user_id="U1", value=1, via="button")
        record_vote(db, answer_id=b, user_id="U1", value=-1, via="button")
    report = export_to_files(db, "trl-kto", tmp_path / "kto.jsonl", eval_fraction=0.25)
    assert report["train"] + report["eval"] == 80 and 0 < report["eval"] < 80
    train = (tmp_path / "kto.jsonl").read_text().splitlines()
    evaluation = (tmp_path / "kto.eval.jsonl").read_text().splitlines()
    assert len(train) == report["train"] and len(evaluation) == report["eval"]
    qs = lambda lines: {json.loads(x)["prompt"][1]["content"] for x in lines}  # noqa: E731
    assert qs(train).isdisjoint(qs(evaluation))  # both answers of a thread land on the same side
    assert in_eval("C1:1.1", 0.0) is False
    with pytest.raises(ExportError, match="eval-fraction"):
        export_to_files(db, "trl-kto", tmp_path / "x.jsonl", eval_fraction=1.5)
    with pytest.raises(ExportError, match="unknown export format"):
        build_examples(db, "csv")


@pytest.mark.parametrize(
    ("raw", "gone", "kept"),
    [
        ("ping <@U02ABCDEF> and <@W123|bob>", ["U02ABCDEF", "W123"], ["ping", "<@USER>"]),
        ("mail jane.doe+ops@corp.example.co.uk now", ["jane.doe"], ["[EMAIL] now"]),
        ("call (415) 555-2671 or +44 20 7946 0958", ["555-2671", "7946"], ["[PHONE]"]),
        ("token xoxb-1234567890-abcdefghij and xapp-1-A0-123-abcdef", ["xoxb-", "xapp-1"], ["[SECRET]"]),
        ("key sk-proj-abcdefghijklmnop1234 and AKIAABCDEFGHIJKLMNOP", ["sk-proj", "AKIA"], ["key [SECRET]"]),
        (
            "see https://s3.example.com/f?X-Amz-Signature=deadbeef99&x=1",
            ["deadbeef99"],
            ["x=1", "https://s3.example.com/f"],
        ),
        ("https://bob:hunter22@git.example.com/repo", ["hunter22", "bob:"], ["git.example.com/repo"]),
        (
            "api_key = 'q9w8e7r6t5y4' and Authorization: Bearer abcdef123456",
            ["q9w8e7r6t5y4", "abcdef123456"],
            ["api_key"],
        ),
        ("Python 3.12.1 released 2024-01-15, see docs.python.org/3/ (port 5432)", [], ["3.12.1", "2024-01-15", "5432"]),
    ],
)
def test_scrub(raw: str, gone: list[str], kept: list[str]) -> None:
    out = scrub(raw)
    for g in gone:
        assert g not in out, out
    for k in kept:
        assert k in out, out
