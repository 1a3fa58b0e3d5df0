"""`lore feedback stats|vote|export|train-reward` and `lore finetune openai|status`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lore.commands.common import EXIT_USAGE, emit_json, fail, load_settings
from lore.config import ConfigError
from lore.db import DatabaseError
from lore.types import EXPORT_FORMATS

VOTE_VALUES = {"up": 1, "down": -1, "clear": 0}


@click.group()
def feedback() -> None:
    """Feedback: stats, votes, training exports, the reward model."""


@feedback.command("stats")
@click.option("--days", default=14, show_default=True, help="Days shown in the by-day table.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def stats(days: int, as_json: bool) -> None:
    """Answers, votes, pairs; up-rate by day, by channel and by surface; the most downvoted answers."""
    from lore.feedback import feedback_stats

    settings = load_settings()
    try:
        report = feedback_stats(settings, days=days)
    except DatabaseError as exc:
        fail(str(exc))
    if as_json:
        emit_json(report)
        return
    console = Console()
    rate = "-" if report["up_rate"] is None else f"{report['up_rate']:.0%}"
    console.print(
        f"[bold]{report['answers']}[/bold] answers, [green]{report['up']} up[/green], [red]{report['down']} down[/red]"
        f" (up-rate {rate}), {report['pairs']} pairs, {report['critiques']} critiques"
        f" ({report['corrections']} with corrections)"
    )
    for title, key, rows in (
        ("by day", "day", report["by_day"]),
        ("by channel", "channel", report["by_channel"]),
        ("by surface", "surface", report["by_surface"]),
    ):
        table = Table(title=title)
        for column in (key, "answers", "up", "down", "up-rate"):
            table.add_column(column, justify="left" if column == key else "right")
        for row in rows:
            row_rate = "-" if row["up_rate"] is None else f"{row['up_rate']:.0%}"
            table.add_row(str(row[key]), str(row["answers"]), str(row["up"]), str(row["down"]), row_rate)
        console.print(table)
    worst = Table(title="most downvoted")
    for column in ("answer", "channel", "up", "down", "question"):
        worst.add_column(column, justify="right" if column in ("answer", "up", "down") else "left")
    for row in report["most_downvoted"]:
        worst.add_row(
            str(row["answer_id"]), row["channel"] or "-", str(row["up"]), str(row["down"]), row["question"][:80]
        )
    console.print(worst)


@feedback.command("vote")
@click.argument("answer_id", type=int)
@click.argument("value", type=click.Choice(sorted(VOTE_VALUES)))
@click.option("--user", "user_id", required=True, help="Slack user id the vote is recorded for.")
@click.option("--source", "source_uri", help="With up: the uri of the answer's source that answered it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def vote(answer_id: int, value: str, user_id: str, source_uri: str | None, as_json: bool) -> None:
    """Record a vote exactly as a reaction by that user would (latest wins; `clear` removes it), and with --source
    which of the answer's sources answered it, as "Which source answered it?" in Slack does."""
    from lore.feedback import FeedbackError, record_vote_naming_source

    settings = load_settings()
    try:
        record_vote_naming_source(
            settings, answer_id=answer_id, user_id=user_id, value=VOTE_VALUES[value], via="cli", source_uri=source_uri
        )
    except FeedbackError as exc:
        fail(str(exc), EXIT_USAGE)
    except DatabaseError as exc:
        fail(str(exc))
    if as_json:
        named = {"source": source_uri} if source_uri else {}
        emit_json({"answer_id": answer_id, "user": user_id, "vote": value, "value": VOTE_VALUES[value], **named})
    else:
        click.echo(
            f"answer {answer_id}: {user_id} voted {value}" + (f", answered by {source_uri}" if source_uri else "")
        )


@feedback.command("export")
@click.option("--format", "fmt", required=True, type=click.Choice(EXPORT_FORMATS))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="JSONL file (default: stdout).")
@click.option("--eval-fraction", type=float, default=0.0, show_default=True, help="Share of threads held out for eval.")
@click.option(
    "--eval-output", type=click.Path(dir_okay=False, path_type=Path), help="Eval JSONL (default: FILE.eval.jsonl)."
)
@click.option("--include-private", is_flag=True, help="Include answers from private channels and DMs.")
@click.option("--json", "as_json", is_flag=True, help="With -o: print the counts as one JSON document.")
def export(
    fmt: str, output: Path | None, eval_fraction: float, eval_output: Path | None, include_private: bool, as_json: bool
) -> None:
    """Training data in the format its trainer documents (PII scrubbed, private answers excluded)."""
    from lore.exports import ExportError, build_examples, export_to_files, write_jsonl

    settings = load_settings()
    try:
        if output is None:
            if eval_fraction > 0:
                fail("--eval-fraction needs -o FILE (the eval part goes next to it)", EXIT_USAGE)
            write_jsonl(build_examples(settings, fmt, include_private=include_private), sys.stdout)
            return
        report = export_to_files(
            settings, fmt, output, include_private=include_private, eval_fraction=eval_fraction, eval_out=eval_output
        )
    except ExportError as exc:
        fail(str(exc), EXIT_USAGE)
    except DatabaseError as exc:
        fail(str(exc))
    if as_json:
        emit_json(report)
    else:
        eval_part = f", {report['eval']} eval examples to {report['eval_output']}" if "eval_output" in report else ""
        click.echo(f"{report['train']} {fmt} examples to {output}{eval_part}", err=True)


@feedback.command("train-reward")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def train_reward_command(as_json: bool) -> None:
    """Fit the small CPU reward model on votes and pairs; report held-out accuracy and AUC."""
    from lore.reward import NotEnoughData, train_reward

    settings = load_settings()
    try:
        report = train_reward(settings)
    except NotEnoughData as exc:
        if as_json:
            emit_json({"trained": False, "reason": str(exc)})
        else:
            click.echo(f"not enough feedback to train a reward model: {exc}; nothing changed")
        return
    except DatabaseError as exc:
        fail(str(exc))
    if as_json:
        emit_json({"trained": True, **report})
        return
    auc = "n/a" if report["auc"] is None else f"{report['auc']:.3f}"
    click.echo(
        f"reward model trained on {report['train']} examples; held-out ({report['held_out']}): "
        f"accuracy {report['accuracy']:.3f}, AUC {auc}; saved to {report['path']}"
    )


@click.group()
def finetune() -> None:
    """Fine-tune a chat model on the feedback (OpenAI)."""


@finetune.command("openai")
@click.option("--method", type=click.Choice(["sft", "dpo"]), default="sft", show_default=True)
@click.option("--model", help="Base model (default: LORE_CHAT_MODEL or gpt-4o-mini-2024-07-18).")
@click.option("--eval-fraction", type=float, default=0.1, show_default=True)
@click.option("--include-private", is_flag=True)
@click.option("--suffix", default="lore", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def finetune_openai(
    method: str, model: str | None, eval_fraction: float, include_private: bool, suffix: str, as_json: bool
) -> None:
    """Export, upload and start an OpenAI fine-tuning job (supervised or DPO)."""
    from lore.exports import ExportError
    from lore.finetune import FinetuneError, start_openai_finetune

    settings = load_settings()
    try:
        job = start_openai_finetune(
            settings,
            method=method,
            model=model,
            eval_fraction=eval_fraction,
            include_private=include_private,
            suffix=suffix,
        )
    except (ConfigError, ExportError) as exc:
        fail(str(exc), EXIT_USAGE)
    except (FinetuneError, DatabaseError) as exc:
        fail(str(exc))
    except Exception as exc:  # the OpenAI client's errors: the API's own message, never the key
        fail(f"the fine-tuning API refused the job: {type(exc).__name__}: {exc}")
    if as_json:
        emit_json(job)
    else:
        click.echo(f"job {job['id']} ({job['status']}) on {job['model']} with {job['examples']} examples")
        click.echo("follow it with `lore finetune status`")


@finetune.command("status")
@click.argument("job_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def finetune_status_command(job_id: str | None, as_json: bool) -> None:
    """The last job started here (or JOB_ID); its fine-tuned model name once it succeeded."""
    from lore.finetune import finetune_status

    settings = load_settings()
    try:
        jobs = finetune_status(settings, job_id=job_id)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except Exception as exc:
        fail(f"could not read the fine-tuning job: {type(exc).__name__}: {exc}")
    if as_json:
        emit_json(jobs)
        return
    for job in jobs:
        line = f"{job['id']}  {job['status']:<12} {job['model']}"
        if job["fine_tuned_model"]:
            line += f"  -> LORE_CHAT_MODEL={job['fine_tuned_model']}"
        if job["error"]:
            line += f"  error: {job['error']}"
        click.echo(line)


COMMANDS = [feedback, finetune]
