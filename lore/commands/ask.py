"""`lore search`, `lore ask`, `lore chat` and `lore eval retrieval`: the knowledge base from the terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lore.commands.common import EXIT_USAGE, emit_json, fail, load_settings
from lore.config import Settings
from lore.types import SEARCH_MODES, Answer, Asker


@contextmanager
def clean_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one clear line and a non-zero exit."""
    from lore.db import DatabaseError
    from lore.embeddings import EmbeddingError
    from lore.llm import LLMError
    from lore.search import SearchError

    try:
        yield
    except (DatabaseError, LLMError) as exc:
        fail(str(exc))
    except (SearchError, EmbeddingError) as exc:  # a bad request, or an embedder misconfigured: as in `ingest`
        fail(str(exc), EXIT_USAGE)


def cli_asker(channel: str | None) -> Asker:
    return Asker(channel_id=channel, surface="cli")


@click.command()
@click.argument("query")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 200), help="Results to return.")
@click.option("--channel", default=None, help="Search as from this Slack channel (its documents become visible).")
@click.option("--mode", type=click.Choice(SEARCH_MODES), default="hybrid", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def search(query: str, k: int, channel: str | None, mode: str, as_json: bool) -> None:
    """Search the knowledge base (public documents, plus the channel's with --channel)."""
    from lore.search import hybrid_search

    settings = load_settings()
    with clean_errors():
        hits = hybrid_search(settings, query, asker=cli_asker(channel), k=k, mode=mode)
    if as_json:
        emit_json([h.as_json() for h in hits])
        return
    console = Console()
    if not hits:
        console.print("no results")
        return
    table = Table(show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("source")
    table.add_column("text")
    for i, hit in enumerate(hits, start=1):
        excerpt = " ".join(hit.text.split())
        source = f"{hit.title}\n{hit.uri}" + (f"\n§ {hit.heading}" if hit.heading else "")
        table.add_row(str(i), f"{hit.score:.4f}", source, excerpt[:300] + ("…" if len(excerpt) > 300 else ""))
    console.print(table)


def print_citations(answer: Answer) -> None:
    if not answer.citations:
        return
    click.echo("")
    for citation in answer.citations:
        click.echo(f"[{citation.number}] {citation.title} <{citation.uri}>")


def stdout_streamer() -> Callable[[str], None]:
    def write(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    return write


@click.command()
@click.argument("question")
@click.option("--channel", default=None, help="Ask as from this Slack channel (its documents become visible).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def ask(question: str, channel: str | None, as_json: bool) -> None:
    """Answer a question from the knowledge base, with numbered sources (recorded like a Slack answer)."""
    from lore.agent import answer_question

    settings = load_settings()
    with clean_errors():
        answer = answer_question(
            settings, question, asker=cli_asker(channel), on_token=None if as_json else stdout_streamer()
        )
    if as_json:
        emit_json(answer.as_json())
        return
    click.echo("")
    print_citations(answer)
    click.echo(f"\n(answer {answer.answer_id}, {answer.model}, {answer.latency_ms} ms)", err=True)


def model_label(settings: Settings) -> str:
    return settings.effective_chat_model or "no model configured: search-only answers"


@click.group("eval")
def eval_group() -> None:
    """Evaluate retrieval quality."""


@eval_group.command("retrieval")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 100), help="k of recall@k.")
@click.option("--mode", type=click.Choice([*SEARCH_MODES, "all"]), default="hybrid", show_default=True)
@click.option(
    "--feedback",
    type=click.Choice(["on", "off"]),
    default="off",
    show_default=True,
    help="on: search as answers do, with the feedback memory of the team's votes; off: retrieval alone.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (a list of objects for --mode all).")
def eval_retrieval(file: Path, k: int, mode: str, feedback: str, as_json: bool) -> None:
    """recall@k, MRR@10 and nDCG@10 over FILE.jsonl rows {"query": ..., "relevant": [uri substrings]}."""
    from lore.eval import EvalFileError, evaluate, load_eval_set
    from lore.search import MODES

    settings = load_settings()
    try:
        rows = load_eval_set(file)
    except EvalFileError as exc:
        fail(str(exc), EXIT_USAGE)
    modes = list(MODES) if mode == "all" else [mode]
    with clean_errors():
        results = evaluate(settings, rows, modes=modes, k=k, use_feedback=feedback == "on")
    if as_json:
        document: Any = [r.as_json(with_mode=True) for r in results] if mode == "all" else results[0].as_json()
        emit_json(document)
        return
    table = Table(title=f"retrieval on {file} ({len(rows)} questions)")
    for name in ("mode", f"recall@{k}", "MRR@10", "nDCG@10"):
        table.add_column(name, justify="left" if name == "mode" else "right")
    for result in results:
        table.add_row(result.mode, f"{result.recall_at_k:.3f}", f"{result.mrr:.3f}", f"{result.ndcg_at_10:.3f}")
    Console().print(table)


COMMANDS = (search, ask, eval_group)
