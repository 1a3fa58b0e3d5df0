"""source_picks: which of an upvoted answer's sources answered the question, as its voter said after the 👍

Revision ID: 0015_source_picks
Revises: 0014_page_vectors
Create Date: 2026-12-07 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0015_source_picks"
down_revision: str | None = "0014_page_vectors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_picks",
        sa.Column("answer_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_id"], ["answers.id"], name=op.f("fk_source_picks_answer_id_answers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("answer_id", "user_id", name=op.f("pk_source_picks")),
    )


def downgrade() -> None:
    op.drop_table("source_picks")
