"""chunks.boost dropped: read by every search, written by nothing (votes act through the feedback memory)

Revision ID: 0011_drop_chunk_boost
Revises: 0010_channel_modes
Create Date: 2026-12-06 12:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011_drop_chunk_boost"
down_revision: str | None = "0010_channel_modes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("chunks", "boost")


def downgrade() -> None:
    op.add_column("chunks", sa.Column("boost", sa.Float(), server_default=sa.text("0"), nullable=False))
