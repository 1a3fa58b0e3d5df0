"""embedder registry: fine-tuned copies of the offline embedder, which one is active, and shadow vector columns

`lore finetune embedder` trains a copy of all-MiniLM-L6-v2 and records it in embedder_models. Switching to it
re-embeds the knowledge base into shadow columns (chunks.embedding_next, answers.question_embedding_next) while
searches keep reading the live ones; one transaction then swaps the columns and flips embedder_state, so the
stored vectors are never a mix of two models (lore.embedder_registry has the protocol).

Adding a nullable column without a default changes only the catalog: no table rewrite, whatever the size.

Revision ID: 0008_embedder_registry
Revises: 0007_api_tokens
Create Date: 2026-12-06 10:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision: str = "0008_embedder_registry"
down_revision: str | None = "0007_api_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DIM = 384


def upgrade() -> None:
    op.create_table(
        "embedder_models",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("base", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="trained", nullable=False),
        sa.Column("pairs", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("before_mrr", sa.Float(), nullable=True),
        sa.Column("after_mrr", sa.Float(), nullable=True),
        sa.Column("report", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('trained', 'rejected', 'active', 'retired')", name=op.f("ck_embedder_models_status")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_embedder_models")),
    )
    op.create_table(
        "embedder_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Text(), nullable=True),
        sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("shadow", sa.Text(), nullable=True),
        sa.Column("switching_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_embedder_state_single_row")),
        sa.ForeignKeyConstraint(
            ["active"], ["embedder_models.name"], name=op.f("fk_embedder_state_active_embedder_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embedder_state")),
    )
    op.execute("INSERT INTO embedder_state (id) VALUES (1)")
    op.add_column("chunks", sa.Column("embedding_next", Vector(_DIM), nullable=True))
    op.add_column("answers", sa.Column("question_embedding_next", Vector(_DIM), nullable=True))


def downgrade() -> None:
    op.drop_column("answers", "question_embedding_next")
    op.drop_column("chunks", "embedding_next")
    op.drop_table("embedder_state")
    op.drop_table("embedder_models")
