"""chunks: keep rows whole in the table (no TOAST for a chunk's text, tsvector and embedding)

A chunk row (text ~1 KB, its tsvector, a 1.5 KB embedding) is over PostgreSQL's default 2 KB toast target,
so every insert compressed the text and tsvector with pglz and moved the embedding into the TOAST table
(a second heap and index insert per row), and every search hit read its embedding back through the TOAST
index. With the target at its maximum, rows up to ~8 KB stay whole in one heap page: COPY of 20,000 rows
went from 3.7 s to 3.1-3.4 s (bench/ingest.py rows, same server), and a search hit is
one heap page. Rows written before this keep their TOAST values until rewritten.

Revision ID: 0004_chunks_inline_rows
Revises: 0003_feedback_evidence
Create Date: 2026-11-27 06:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_chunks_inline_rows"
down_revision: str | None = "0003_feedback_evidence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE chunks SET (toast_tuple_target = 8160)")


def downgrade() -> None:
    op.execute("ALTER TABLE chunks RESET (toast_tuple_target)")
