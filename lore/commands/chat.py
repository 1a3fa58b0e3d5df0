"""`lore chat`: the bot in a terminal, with slash commands to vote on and inspect the last answer."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

import click

from lore.commands.ask import clean_errors, model_label, print_citations, stdout_streamer
from lore.config import Settings
from lore.types import Answer, Asker, Turn

HELP = """Commands:
  /help      this list
  /up        vote 👍 on the last answer (as a reaction by you would)
  /down      vote 👎 on the last answer
  /sources   the last answer's sources again
  /quit      leave (also `exit` or Ctrl-D)
Anything else is a question; follow-ups see the conversation."""


def local_user() -> str:
    """The terminal's user as Lore records them: votes and answers from `lore chat` carry this id."""
    with suppress(Exception):
        return f"local:{getpass.getuser()}"
    return "local:user"


@dataclass
class ChatSession:
    """One terminal conversation: its history, the last answer (what /up, /down and /sources act on)."""

    settings: Settings
    asker: Asker
    history: list[Turn] = field(default_factory=list)
    last: Answer | None = None

    def ask(self, question: str) -> None:
        from lore.agent import answer_question

        sys.stdout.write("lore> ")
        with clean_errors():
            answer = answer_question(
                self.settings, question, asker=self.asker, history=self.history, on_token=stdout_streamer()
            )
        click.echo("")
        print_citations(answer)
        self.history.extend([Turn("user", question), Turn("assistant", answer.text)])
        self.last = answer

    def vote(self, value: int) -> None:
        from lore.feedback import FeedbackError, record_vote

        if self.last is None or self.last.answer_id is None:
            click.echo("no answer to vote on yet: ask a question first")
            return
        assert self.asker.user_id is not None
        try:
            record_vote(
                self.settings, answer_id=self.last.answer_id, user_id=self.asker.user_id, value=value, via="cli"
            )
        except FeedbackError as exc:
            click.echo(f"vote not recorded: {exc}")
            return
        click.echo(f"recorded {'👍' if value > 0 else '👎'} on answer {self.last.answer_id}")

    def sources(self) -> None:
        if self.last is None:
            click.echo("no answer yet: ask a question first")
        elif not self.last.citations:
            click.echo("the last answer cited no sources")
        else:
            print_citations(self.last)

    def command(self, line: str) -> bool:
        """Run a slash command; False when the session should end."""
        name = line.split()[0].lower()
        actions: dict[str, Callable[[], None]] = {
            "/help": lambda: click.echo(HELP),
            "/up": lambda: self.vote(1),
            "/down": lambda: self.vote(-1),
            "/sources": self.sources,
        }
        if name in {"/quit", "/exit"}:
            return False
        action = actions.get(name)
        if action is None:
            click.echo(f"unknown command {name}: /help lists them")
        else:
            action()
        return True


@click.command()
@click.option("--channel", default=None, help="Chat as from this Slack channel (its documents become visible).")
def chat(channel: str | None) -> None:
    """Chat with Lore in the terminal: answers stream in, follow-ups see the conversation. /help lists commands."""
    from lore.commands.common import load_settings

    with suppress(ImportError):  # line editing and history for input(), where the platform has it
        import readline  # noqa: F401
    settings = load_settings()
    session = ChatSession(settings, Asker(user_id=local_user(), channel_id=channel, surface="cli"))
    click.echo(f"Lore chat ({model_label(settings)}). Ask a question; /help for commands, /quit or Ctrl-D to leave.")
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            click.echo("")
            return
        if not line:
            continue
        if line.lower() in {"exit", "quit", ":q"}:
            return
        if line.startswith("/"):
            if not session.command(line):
                return
            continue
        session.ask(line)
