"""feedback_evidence.named: whether a correction on the answer named the document, stored with the evidence
instead of being looked up in critiques for every evidence row each time a searching process reloads its memory

Revision ID: 0013_evidence_named
Revises: 0012_feedback_days
Create Date: 2026-12-06 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0013_evidence_named"
down_revision: str | None = "0012_feedback_days"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "feedback_evidence", sa.Column("named", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.execute(
        """
        UPDATE feedback_evidence e SET named = true
        WHERE EXISTS (SELECT 1 FROM critiques cr JOIN documents d ON d.uri = cr.source_uri
                      WHERE cr.answer_id = e.answer_id AND d.id = e.document_id)
        """
    )


def downgrade() -> None:
    op.drop_column("feedback_evidence", "named")
