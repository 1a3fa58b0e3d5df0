"""eval runs and the console's vote indexes: the Eval page keeps each run of a question set in every search mode,
to chart over time; the Feedback page reads today's votes by when they were cast, and the downvotes alone

Revision ID: 0009_eval_runs
Revises: 0008_embedder_registry
Create Date: 2026-12-06 10:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_eval_runs"
down_revision: str | None = "0008_embedder_registry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("questions", sa.Integer(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("results", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("question_set", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_runs")),
    )
    op.create_index(op.f("ix_eval_runs_created_at"), "eval_runs", ["created_at"], unique=False)
    op.create_index(op.f("ix_votes_updated_at"), "votes", ["updated_at"], unique=False)
    op.create_index("ix_votes_down", "votes", ["answer_id"], unique=False, postgresql_where=sa.text("value < 0"))


def downgrade() -> None:
    op.drop_index("ix_votes_down", table_name="votes")
    op.drop_index(op.f("ix_votes_updated_at"), table_name="votes")
    op.drop_index(op.f("ix_eval_runs_created_at"), table_name="eval_runs")
    op.drop_table("eval_runs")
