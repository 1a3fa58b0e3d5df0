"""Training exports of the feedback: TRL (SFT, DPO, KTO) and OpenAI (SFT, DPO) JSONL, PII-scrubbed, split by thread.

Prompts are rebuilt from `answers.prompt`, the exact messages the model saw (system prompt, fenced context,
history, tool calls and results), without the final reply, which becomes the completion. Formats:

- trl-sft:    {"messages": [...prompt, {"role": "assistant", ...}]}             (TRL conversational language modeling)
- trl-dpo:    {"prompt": [...], "chosen": [assistant], "rejected": [assistant]} (TRL conversational preference)
- trl-kto:    {"prompt": [...], "completion": [assistant], "label": bool}       (TRL conversational unpaired preference)
- openai-sft: {"messages": [...]}                                                (OpenAI chat fine-tuning)
- openai-dpo: {"input": {"messages": [...]}, "preferred_output": [assistant], "non_preferred_output": [assistant]}

Where the data comes from: an answer's net vote (sum of current votes) > 0 is "good", < 0 "bad"; a correction
from the thumbs-down dialog is a good completion for that answer's prompt and is preferred to the answer;
comparisons (regenerate, "which is better?") and up/down answers to the same question make pairs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import phonenumbers

from lore.config import Settings
from lore.db import raw_connection
from lore.types import EXPORT_FORMATS

FORMATS = EXPORT_FORMATS


# -- PII scrub -------------------------------------------------------------------------------------------------
# Phone numbers use Google's libphonenumber (the maintained `phonenumbers` package), which validates numbers
# per region instead of matching any digit run. For the rest, the maintained PII libraries do not fit:
# Presidio needs a spaCy model downloaded at run time, scrubadub is unmaintained since 2023, and none knows
# Slack's mention syntax or its xox tokens. Those are precise, well-known patterns, so they are regexes here.

_SECRETS = re.compile(
    r"\bxox[abeoprs]-[A-Za-z0-9-]{8,}"  # Slack bot/user/app tokens
    r"|\bxapp-[A-Za-z0-9-]{8,}"  # Slack app-level tokens
    r"|\bsk-(?:proj-|svcacct-|ant-)?[A-Za-z0-9_-]{16,}"  # OpenAI / Anthropic keys
    r"|\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|\bglpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bAIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
)
# `api_key: ...`, `password=...`, `Authorization: Bearer ...`: the value goes, the name stays for context.
_ASSIGNED_SECRET = re.compile(
    r"(?i)\b((?:api[_-]?key|secret(?:[_-]key)?|access[_-]?token|auth[_-]?token|token|password|passwd|pwd)"
    r"\s*[:=]\s*[\"']?|bearer\s+)([^\s\"'<>,;\[][^\s\"'<>,;]{5,})"
)
_SLACK_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
_EMAIL = re.compile(r"(?i)(?<![\w.+-])[\w.+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b")
_URL = re.compile(r"(?i)\bhttps?://[^\s<>|\"']+")
_URL_CREDENTIALS = re.compile(r"(?i)(https?://)[^/\s@:]+:[^/\s@]+@")
_TOKEN_PARAM = re.compile(
    r"(?i)([?&#](?:[\w-]*(?:token|key|secret|sig|signature|password|passwd|auth|code|session|credential)[\w-]*)=)"
    r"[^&#\s]+"
)


def _scrub_url(match: re.Match[str]) -> str:
    url = _URL_CREDENTIALS.sub(r"\1[REDACTED]@", match.group(0))
    return _TOKEN_PARAM.sub(r"\1[REDACTED]", url)


def scrub(text: str, *, region: str = "US") -> str:
    """The text with emails, phone numbers, Slack mentions, secrets and token-bearing URL parts replaced."""
    if not text:
        return text
    text = _SECRETS.sub("[SECRET]", text)
    text = _URL.sub(_scrub_url, text)
    text = _ASSIGNED_SECRET.sub(lambda m: m.group(1) + "[SECRET]", text)
    text = _SLACK_MENTION.sub("<@USER>", text)
    text = _EMAIL.sub("[EMAIL]", text)
    matches = list(phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID))
    for match in reversed(matches):
        text = text[: match.start] + "[PHONE]" + text[match.end :]
    return text


class ExportError(ValueError):
    """An export cannot be made as asked (unknown format, bad split)."""


@dataclass(frozen=True)
class Example:
    """One training record and the conversation it came from (the train/eval split keeps threads whole)."""

    thread: str
    record: dict[str, Any]


@dataclass(frozen=True)
class _Answer:
    id: int
    thread: str
    question: str
    prompt: list[dict[str, Any]]
    answer: str
    net: int
    correction: str | None


_ANSWERS = """
SELECT a.id, a.channel_id, a.thread_ts, a.question, a.prompt, a.answer,
       coalesce((SELECT sum(v.value) FROM votes v WHERE v.answer_id = a.id), 0) AS net,
       (SELECT cr.correction FROM critiques cr WHERE cr.answer_id = a.id AND cr.correction IS NOT NULL
        ORDER BY cr.created_at DESC, cr.id DESC LIMIT 1) AS correction,
       (WITH RECURSIVE up(id, parent_id) AS (
            SELECT a.id, a.parent_id
            UNION ALL SELECT p.id, p.parent_id FROM answers p JOIN up ON p.id = up.parent_id
        ) SELECT min(id) FROM up WHERE parent_id IS NULL) AS root_id
FROM answers a
WHERE jsonb_array_length(a.prompt) > 0
  AND (%(include_private)s OR NOT a.private)
  AND (a.channel_id IS NULL OR NOT (a.channel_id = ANY(%(opt_out)s::text[])))
  AND NOT EXISTS (SELECT 1 FROM channel_settings cs WHERE cs.channel_id = a.channel_id AND cs.feedback_opt_out)
ORDER BY a.id
"""

_COMPARISONS = "SELECT chosen_id, rejected_id FROM comparisons ORDER BY id"
# Links in a correction, bare or as Slack writes them (<https://…|label>).
_LINKED = re.compile(r"https?://[^\s|>]+")


def _prompt_messages(stored: list[dict[str, Any]], answer: str) -> list[dict[str, Any]]:
    """The messages the model saw before its final reply, in the OpenAI chat shape both trainers read."""
    messages = list(stored)
    if messages and messages[-1].get("role") == "assistant" and not messages[-1].get("tool_calls"):
        messages = messages[:-1]
    out: list[dict[str, Any]] = []
    for message in messages:
        role = str(message.get("role", "user"))
        item: dict[str, Any] = {"role": role, "content": scrub(str(message.get("content") or ""))}
        if role == "assistant" and message.get("tool_calls"):
            item["tool_calls"] = [
                {
                    "id": call.get("id") or f"call_{n}",
                    "type": "function",
                    # A JSON string, as OpenAI expects; it also keeps one column type for `datasets`.
                    "function": {"name": call.get("name"), "arguments": scrub(json.dumps(call.get("args") or {}))},
                }
                for n, call in enumerate(message["tool_calls"])
            ]
        if role == "tool":
            item["tool_call_id"] = message.get("tool_call_id")
        out.append(item)
    return out


def _assistant(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": scrub(text)}]


def _load(settings: Settings, *, include_private: bool) -> tuple[dict[int, _Answer], list[tuple[int, int]]]:
    params = {"include_private": include_private, "opt_out": settings.csv("opt_out_channels")}
    with raw_connection(settings) as conn:
        rows = conn.execute(_ANSWERS, params).fetchall()
        comparisons = [(int(c), int(r)) for c, r in conn.execute(_COMPARISONS).fetchall()]
    answers: dict[int, _Answer] = {}
    for answer_id, channel, thread_ts, question, prompt, text, net, correction, root_id in rows:
        thread = f"{channel}:{thread_ts}" if channel and thread_ts else f"answer:{root_id or answer_id}"
        answers[int(answer_id)] = _Answer(
            id=int(answer_id),
            thread=thread,
            question=question,
            prompt=_prompt_messages(prompt, text),
            answer=text,
            net=int(net),
            correction=correction,
        )
    return answers, comparisons


def _pairs(answers: dict[int, _Answer], comparisons: list[tuple[int, int]]) -> Iterator[tuple[_Answer, str, str]]:
    """(answer whose prompt is used, chosen text, rejected text), each pair once."""
    seen: set[tuple[str, str]] = set()

    def once(base: _Answer, chosen: str, rejected: str) -> Iterator[tuple[_Answer, str, str]]:
        key = (chosen, rejected)
        if chosen.strip() and rejected.strip() and chosen != rejected and key not in seen:
            seen.add(key)
            yield base, chosen, rejected

    for chosen_id, rejected_id in comparisons:
        if chosen_id in answers and rejected_id in answers:
            # The preferred answer's prompt: the context that produced the better reply.
            yield from once(answers[chosen_id], answers[chosen_id].answer, answers[rejected_id].answer)
    for answer in answers.values():
        if answer.correction:
            yield from once(answer, answer.correction, answer.answer)
    by_question: dict[str, list[_Answer]] = {}
    for answer in answers.values():
        by_question.setdefault(" ".join(answer.question.lower().split()), []).append(answer)
    for group in by_question.values():
        good = [a for a in group if a.net > 0]
        bad = [a for a in group if a.net < 0]
        for g in good:
            for b in bad:
                yield from once(g, g.answer, b.answer)


def build_examples(settings: Settings, fmt: str, *, include_private: bool = False) -> list[Example]:
    """Every training record of a format, scrubbed, with the thread each came from."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "eval":
        return eval_examples(settings, include_private=include_private)
    answers, comparisons = _load(settings, include_private=include_private)
    examples: list[Example] = []
    if fmt in ("trl-sft", "openai-sft"):
        for a in answers.values():
            completions = ([a.answer] if a.net > 0 else []) + ([a.correction] if a.correction else [])
            for text in completions:
                examples.append(Example(a.thread, {"messages": [*a.prompt, *_assistant(text)]}))
    elif fmt == "trl-kto":
        for a in answers.values():
            if a.net != 0:
                examples.append(
                    Example(a.thread, {"prompt": a.prompt, "completion": _assistant(a.answer), "label": a.net > 0})
                )
            if a.correction:
                examples.append(
                    Example(a.thread, {"prompt": a.prompt, "completion": _assistant(a.correction), "label": True})
                )
    else:
        for base, chosen, rejected in _pairs(answers, comparisons):
            record: dict[str, Any]
            if fmt == "trl-dpo":
                record = {"prompt": base.prompt, "chosen": _assistant(chosen), "rejected": _assistant(rejected)}
            else:
                record = {
                    "input": {"messages": base.prompt},
                    "preferred_output": _assistant(chosen),
                    "non_preferred_output": _assistant(rejected),
                }
            examples.append(Example(base.thread, record))
    return examples


_CORRECTIONS = """
SELECT a.id, a.channel_id, a.thread_ts, a.question, cr.correction
FROM answers a JOIN critiques cr ON cr.answer_id = a.id AND cr.correction IS NOT NULL
WHERE (%(include_private)s OR NOT a.private)
  AND (a.channel_id IS NULL OR NOT (a.channel_id = ANY(%(opt_out)s::text[])))
  AND NOT EXISTS (SELECT 1 FROM channel_settings cs WHERE cs.channel_id = a.channel_id AND cs.feedback_opt_out)
ORDER BY a.id, cr.id
"""


def eval_examples(settings: Settings, *, include_private: bool) -> list[Example]:
    """Retrieval eval cases from corrections (also of answers that said "I don't know", which have no prompt):
    the question, and the links the correction gives as where the answer is. A correction that names no source
    cannot say what retrieval should have found, and is left out."""
    params = {"include_private": include_private, "opt_out": settings.csv("opt_out_channels")}
    with raw_connection(settings) as conn:
        rows = conn.execute(_CORRECTIONS, params).fetchall()
    examples: list[Example] = []
    for answer_id, channel, thread_ts, question, correction in rows:
        relevant = sorted(set(_LINKED.findall(correction or "")))
        if relevant:
            thread = f"{channel}:{thread_ts}" if channel and thread_ts else f"answer:{answer_id}"
            examples.append(Example(thread, {"query": scrub(question), "relevant": relevant}))
    return examples


def in_eval(thread: str, eval_fraction: float) -> bool:
    """A stable, thread-level split: every example of a thread lands on the same side."""
    bucket = int.from_bytes(hashlib.sha256(thread.encode()).digest()[:8], "big") / 2**64
    return bucket < eval_fraction


def split(examples: Iterable[Example], eval_fraction: float) -> tuple[list[Example], list[Example]]:
    if not 0 <= eval_fraction < 1:
        raise ExportError(f"--eval-fraction must be in [0, 1), got {eval_fraction}")
    train: list[Example] = []
    evaluation: list[Example] = []
    for example in examples:
        (evaluation if in_eval(example.thread, eval_fraction) else train).append(example)
    return train, evaluation


def write_jsonl(examples: Iterable[Example], out: TextIO) -> int:
    count = 0
    for example in examples:
        out.write(json.dumps(example.record, ensure_ascii=False) + "\n")
        count += 1
    return count


def eval_path(path: Path) -> Path:
    """Where the eval part of `path` goes: train.jsonl -> train.eval.jsonl."""
    return path.with_name(f"{path.stem}.eval{path.suffix or '.jsonl'}")


def export_to_files(
    settings: Settings,
    fmt: str,
    out: Path,
    *,
    include_private: bool = False,
    eval_fraction: float = 0.0,
    eval_out: Path | None = None,
) -> dict[str, Any]:
    """Write the train (and, with a fraction, eval) JSONL files; returns counts and paths."""
    train, evaluation = split(build_examples(settings, fmt, include_private=include_private), eval_fraction)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        write_jsonl(train, fh)
    report: dict[str, Any] = {"format": fmt, "train": len(train), "eval": len(evaluation), "output": str(out)}
    if eval_fraction > 0:
        target = eval_out or eval_path(out)
        with target.open("w", encoding="utf-8") as fh:
            write_jsonl(evaluation, fh)
        report["eval_output"] = str(target)
    return report
