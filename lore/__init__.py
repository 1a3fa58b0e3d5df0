"""Lore: a Slack bot that answers from a team's documents and learns from its reactions."""

__version__ = "0.1.0"
