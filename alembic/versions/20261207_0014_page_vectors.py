"""documents.embedding: each document's page vector (the normalized mean of its passages' embeddings; none for a
document of one passage), which hybrid search weighs with a passage's own similarity to the question; filled here
for the documents already ingested

Revision ID: 0014_page_vectors
Revises: 0013_evidence_named
Create Date: 2026-12-07 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector

from alembic import op
from lore.db import PAGE_VECTORS_SQL

revision: str = "0014_page_vectors"
down_revision: str | None = "0013_evidence_named"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("embedding", Vector(384), nullable=True))
    op.execute(PAGE_VECTORS_SQL.format(where=""))


def downgrade() -> None:
    op.drop_column("documents", "embedding")
