"""channel modes: where Lore answers in a channel (mention, off, auto), the uri prefixes its answers there may draw
on, and who is asked when Lore cannot help (set with /lore config)

Revision ID: 0010_channel_modes
Revises: 0009_eval_runs
Create Date: 2026-12-06 11:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_channel_modes"
down_revision: str | None = "0009_eval_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("channel_settings", sa.Column("mode", sa.Text(), server_default="mention", nullable=False))
    op.add_column(
        "channel_settings",
        sa.Column("source_prefixes", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    )
    op.add_column("channel_settings", sa.Column("escalation_target", sa.Text(), nullable=True))
    op.create_check_constraint(op.f("ck_channel_settings_mode"), "channel_settings", "mode IN ('mention', 'off', 'auto')")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_channel_settings_mode"), "channel_settings", type_="check")
    op.drop_column("channel_settings", "escalation_target")
    op.drop_column("channel_settings", "source_prefixes")
    op.drop_column("channel_settings", "mode")
