"""Alembic configuration for Lore's own migrations, wherever Lore is installed from."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

from lore.config import Settings
from lore.db import check_database, sqlalchemy_url

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(settings: Settings) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["url"] = sqlalchemy_url(settings)
    config.attributes["skip_logging"] = True
    return config


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """`alembic upgrade` against the configured database (embedded server started if needed)."""
    from alembic import command

    check_database(settings)
    command.upgrade(alembic_config(settings), revision)
