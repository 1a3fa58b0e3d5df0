"""feedback_days: the console Feedback page's figures of each closed day, kept while the day's rows are unchanged;
the answers and votes indexes by time carry the columns those figures and their stamps read, and answers by id
their channel (index-only scans)

Revision ID: 0012_feedback_days
Revises: 0011_drop_chunk_boost
Create Date: 2026-12-06 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0012_feedback_days"
down_revision: str | None = "0011_drop_chunk_boost"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("stamp", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.Column("latency_p50", sa.Float(), nullable=True),
        sa.Column("latency_p95", sa.Float(), nullable=True),
        sa.Column("up", sa.Integer(), nullable=False),
        sa.Column("down", sa.Integer(), nullable=False),
        sa.Column("channels", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_feedback_days")),
    )
    op.drop_index(op.f("ix_answers_created_at"), table_name="answers")
    op.create_index(
        op.f("ix_answers_created_at"), "answers", ["created_at"], unique=False, postgresql_include=["latency_ms", "id"]
    )
    op.create_index(
        op.f("ix_answers_id"), "answers", ["id"], unique=False, postgresql_include=["channel_id", "surface"]
    )
    op.drop_index(op.f("ix_votes_updated_at"), table_name="votes")
    op.create_index(
        op.f("ix_votes_updated_at"),
        "votes",
        ["updated_at"],
        unique=False,
        postgresql_include=["value", "id", "answer_id"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_votes_updated_at"), table_name="votes")
    op.create_index(op.f("ix_votes_updated_at"), "votes", ["updated_at"], unique=False)
    op.drop_index(op.f("ix_answers_id"), table_name="answers")
    op.drop_index(op.f("ix_answers_created_at"), table_name="answers")
    op.create_index(op.f("ix_answers_created_at"), "answers", ["created_at"], unique=False)
    op.drop_table("feedback_days")
