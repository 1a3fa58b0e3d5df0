"""OpenAI fine-tuning from the feedback exports: upload the JSONL, create the job, follow it (official client).

`sft` trains on upvoted answers and corrections (openai-sft export), `dpo` on preference pairs (openai-dpo).
The files and the last job id are kept under LORE_HOME/finetune/ so `lore finetune status` can follow it.
When the job succeeds, set LORE_CHAT_MODEL to its `fine_tuned_model` (README, Feedback and fine-tuning).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lore.config import ConfigError, Settings
from lore.exports import export_to_files
from lore.logs import kv

log = logging.getLogger(__name__)

METHODS = {"sft": ("openai-sft", "supervised"), "dpo": ("openai-dpo", "dpo")}
# OpenAI refuses training files with fewer examples than this.
MIN_EXAMPLES = 10
DEFAULT_BASE_MODEL = "gpt-4o-mini-2024-07-18"


class FinetuneError(RuntimeError):
    """The fine-tuning job could not be started or followed; the message says why."""


def finetune_dir(settings: Settings) -> Path:
    return settings.home / "finetune"


def openai_client(settings: Settings) -> Any:
    from openai import OpenAI

    if settings.openai_api_key is None:
        raise ConfigError("OPENAI_API_KEY is required for `lore finetune openai` (and OPENAI_BASE_URL for others)")
    return OpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        timeout=settings.llm_timeout_s,
        max_retries=2,
    )


def job_summary(job: Any) -> dict[str, Any]:
    """The fields of a fine-tuning job a person (or a script) follows."""
    error = getattr(job, "error", None)
    return {
        "id": job.id,
        "status": job.status,
        "model": job.model,
        "fine_tuned_model": getattr(job, "fine_tuned_model", None),
        "method": getattr(getattr(job, "method", None), "type", None),
        "training_file": getattr(job, "training_file", None),
        "validation_file": getattr(job, "validation_file", None),
        "trained_tokens": getattr(job, "trained_tokens", None),
        "error": getattr(error, "message", None) if error is not None else None,
    }


def start_openai_finetune(
    settings: Settings,
    *,
    method: str,
    model: str | None = None,
    eval_fraction: float = 0.1,
    include_private: bool = False,
    suffix: str | None = "lore",
    client: Any = None,
) -> dict[str, Any]:
    """Export, upload (purpose fine-tune) and create the job; returns the job summary plus export counts."""
    if method not in METHODS:
        raise FinetuneError(f"unknown method {method!r}: use sft or dpo")
    fmt, openai_method = METHODS[method]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = finetune_dir(settings) / f"{stamp}-{fmt}.jsonl"
    report = export_to_files(settings, fmt, out, include_private=include_private, eval_fraction=eval_fraction)
    if report["train"] < MIN_EXAMPLES:
        raise FinetuneError(
            f"only {report['train']} training examples for {method} (OpenAI needs at least {MIN_EXAMPLES}): "
            "collect more feedback first"
        )
    client = client or openai_client(settings)
    with out.open("rb") as fh:
        training = client.files.create(file=(out.name, fh), purpose="fine-tune")
    validation_id: str | None = None
    if report.get("eval_output") and report["eval"] > 0:
        eval_file = Path(report["eval_output"])
        with eval_file.open("rb") as fh:
            validation_id = client.files.create(file=(eval_file.name, fh), purpose="fine-tune").id
    kwargs: dict[str, Any] = {
        "model": model or settings.chat_model or DEFAULT_BASE_MODEL,
        "training_file": training.id,
        "method": {"type": openai_method},
    }
    if validation_id:
        kwargs["validation_file"] = validation_id
    if suffix:
        kwargs["suffix"] = suffix
    job = client.fine_tuning.jobs.create(**kwargs)
    (finetune_dir(settings) / "last_job.json").write_text(json.dumps({"id": job.id, "method": method}))
    log.info(kv("finetune_started", job=job.id, method=method, examples=report["train"]))
    return {**job_summary(job), "examples": report["train"], "eval_examples": report["eval"]}


def last_job_id(settings: Settings) -> str | None:
    path = finetune_dir(settings) / "last_job.json"
    if not path.exists():
        return None
    return str(json.loads(path.read_text())["id"])


def finetune_status(settings: Settings, *, job_id: str | None = None, client: Any = None) -> list[dict[str, Any]]:
    """The given job (or the last one started here), or the most recent jobs of the account when neither."""
    client = client or openai_client(settings)
    job_id = job_id or last_job_id(settings)
    if job_id:
        return [job_summary(client.fine_tuning.jobs.retrieve(job_id))]
    return [job_summary(job) for job in client.fine_tuning.jobs.list(limit=10).data]
