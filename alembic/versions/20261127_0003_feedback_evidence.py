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
    # Existing feedback gets its evidence now: the computation the application ran at this revision, frozen here
    # so that the migration keeps working whatever lore.feedback_memory becomes (a later revision that changes
    # what evidence means recomputes it in its own SQL).
    for statement in _EVIDENCE_AT_THIS_REVISION:
        op.execute(statement)


# Per voted answer: (up - down) / (n + z^2) with z = 1.96, over 1/rank of each document's best chunk in the answer's
# context; a correction naming a source counts 0.8 for its document.
_EVIDENCE_AT_THIS_REVISION = (
    """
    INSERT INTO feedback_evidence (answer_id, document_id, w)
    SELECT answer_id, document_id, sum(w) FROM (
        SELECT s.answer_id, ch.document_id, s.score / min(src.rank) AS w
        FROM (
            SELECT answer_id, sum(value)::double precision / (count(*) + 3.8416) AS score
            FROM votes GROUP BY answer_id
        ) s
        JOIN answers a ON a.id = s.answer_id
        CROSS JOIN LATERAL unnest(a.chunk_ids) WITH ORDINALITY AS src(chunk_id, rank)
        JOIN chunks ch ON ch.id = src.chunk_id
        WHERE s.score <> 0
        GROUP BY s.answer_id, ch.document_id, s.score
        UNION ALL
        SELECT cr.answer_id, d.id, 0.8
        FROM critiques cr JOIN documents d ON d.uri = cr.source_uri
    ) e
    GROUP BY answer_id, document_id
    HAVING sum(w) <> 0
    """,
    """
    INSERT INTO feedback_answers (answer_id, question_embedding)
    SELECT a.id, a.question_embedding FROM answers a
    WHERE a.question_embedding IS NOT NULL
      AND EXISTS (SELECT 1 FROM feedback_evidence e WHERE e.answer_id = a.id)
    """,
    "UPDATE feedback_state SET version = version + 1",
)


def downgrade() -> None:
    op.drop_index(op.f("ix_feedback_evidence_document_id"), table_name="feedback_evidence")
    op.drop_table("feedback_evidence")
    op.drop_table("feedback_state")
    op.drop_table("feedback_answers")
