"""feedback evidence: precomputed per answer and document, and a version that tells searches to reload it

Revision ID: 0003_feedback_evidence
Revises: 0002_vote_marks
Create Date: 2026-11-27 04:10:00
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op

revision: str = "0003_feedback_evidence"
down_revision: str | None = "0002_vote_marks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback_answers",
        sa.Column("answer_id", sa.BigInteger(), nullable=False),
        sa.Column("question_embedding", pgvector.sqlalchemy.vector.VECTOR(dim=384), nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_id"], ["answers.id"], name=op.f("fk_feedback_answers_answer_id_answers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("answer_id", name=op.f("pk_feedback_answers")),
    )
    op.create_table(
        "feedback_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_feedback_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_state")),
    )
    op.execute("INSERT INTO feedback_state (id, version) VALUES (1, 0)")
    op.create_table(
        "feedback_evidence",
        sa.Column("answer_id", sa.BigInteger(), nullable=False),
        sa.Column("document_id", sa.BigInteger(), nullable=False),
        sa.Column("w", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_id"], ["answers.id"], name=op.f("fk_feedback_evidence_answer_id_answers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_feedback_evidence_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("answer_id", "document_id", name=op.f("pk_feedback_evidence")),
    )
    op.create_index(op.f("ix_feedback_evidence_document_id"), "feedback_evidence", ["document_id"], unique=False)
    # Existing feedback gets its evidence now (the same computation the application runs on every change).
    from lore.feedback_memory import refresh_all

    refresh_all(op.get_bind().connection.driver_connection)


def downgrade() -> None:
    op.drop_index(op.f("ix_feedback_evidence_document_id"), table_name="feedback_evidence")
    op.drop_table("feedback_evidence")
    op.drop_table("feedback_state")
    op.drop_table("feedback_answers")
