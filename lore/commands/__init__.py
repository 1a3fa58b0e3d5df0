"""Subcommands of the `lore` CLI; with lore/cli.py they form the composition root."""
