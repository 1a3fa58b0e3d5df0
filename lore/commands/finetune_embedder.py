"""`lore finetune embedder`: fine-tune the offline embedder on the team's data, switch to it if it is better."""

from __future__ import annotations

from pathlib import Path

import click

from lore.commands.common import EXIT_FAILED, EXIT_USAGE, emit_json, fail, load_settings
from lore.db import DatabaseError


@click.command("embedder")
@click.option(
    "--activate", is_flag=True, help="Switch to the new model if it beats the active one on held-out questions."
)
@click.option(
    "--eval",
    "eval_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Held-out questions (the `lore eval retrieval` format) that judge the model too; repeatable.",
)
@click.option("--max-pairs", type=click.IntRange(1), default=3000, show_default=True, help="Training pairs at most.")
@click.option("--max-steps", type=click.IntRange(1), help="Training steps at most (default: one epoch).")
@click.option("--batch-size", type=click.IntRange(2), default=32, show_default=True, help="Pairs per training step.")
@click.option(
    "--minutes", type=click.FloatRange(0, min_open=True), default=10.0, show_default=True, help="Training time budget."
)
@click.option("--include-private", is_flag=True, help="Train on private channels' passages and answers too.")
@click.option("--json", "as_json", is_flag=True, help='Print {"model","pairs","seconds","before","after","activated"}.')
def embedder(
    activate: bool,
    eval_files: tuple[Path, ...],
    max_pairs: int,
    max_steps: int | None,
    batch_size: int,
    minutes: float,
    include_private: bool,
    as_json: bool,
) -> None:
    """Train a copy of all-MiniLM-L6-v2 on CPU (pseudo-questions from the knowledge base and the team's feedback),
    evaluate it against the active embedder on held-out questions, and with --activate switch to it (a Celery
    job re-embeds the knowledge base; searches move to the new vectors at once, never a mix) only if it is better."""
    from lore.eval import EvalFileError
    from lore.finetune_embedder import FinetuneEmbedderError, Options, finetune_embedder

    settings = load_settings()
    if activate:
        from lore.cli import broker_status

        broker = broker_status(settings)
        if not broker["reachable"]:
            fail(f"--activate needs the Celery broker, which is not reachable ({broker['error']})", EXIT_FAILED)
    options = Options(
        max_pairs=max_pairs,
        max_steps=max_steps,
        batch_size=batch_size,
        time_budget_s=minutes * 60,
        include_private=include_private,
        eval_files=list(eval_files),
    )
    try:
        report = finetune_embedder(
            settings, options, activate=activate, progress=lambda message: click.echo(message, err=True)
        )
    except EvalFileError as exc:
        fail(str(exc), EXIT_USAGE)
    except (FinetuneEmbedderError, DatabaseError) as exc:
        fail(str(exc))
    if as_json:
        emit_json(report)
        return
    click.echo(
        f"{report['model']}: {report['pairs']} pairs, held-out MRR@10 {report['before']} -> {report['after']}"
        f" ({report['reason']}); {report['seconds']:.0f} s"
    )
    for name, result in report["eval"].items():
        click.echo(f"  {name:<24} n={result['n']:<5} MRR {result['before']['mrr']} -> {result['after']['mrr']}")
    if report["activated"]:
        click.echo(f"active now: {report['model']}")
    elif activate:
        error = report.get("switch", {}).get("error")
        click.echo(f"not activated: {error or report['reason']}")


def register(main: click.Group) -> None:
    """Add `embedder` to the `finetune` group."""
    group = main.commands.get("finetune")
    if not isinstance(group, click.Group):
        raise RuntimeError("the finetune command group is missing")
    group.add_command(embedder)
