"""vote marks: per reaction kind, the latest event, so redelivered or reordered feedback never undoes a newer one

Revision ID: 0002_vote_marks
Revises: 0001
Create Date: 2026-11-26 23:59:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002_vote_marks'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('vote_marks',
    sa.Column('answer_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('value', sa.SmallInteger(), nullable=False),
    sa.Column('present', sa.Boolean(), nullable=False),
    sa.Column('event_ts', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('via', sa.Text(), server_default='reaction', nullable=False),
    sa.CheckConstraint('value IN (-1, 1)', name=op.f('ck_vote_marks_value')),
    sa.ForeignKeyConstraint(['answer_id'], ['answers.id'], name=op.f('fk_vote_marks_answer_id_answers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('answer_id', 'user_id', 'value', name=op.f('pk_vote_marks'))
    )


def downgrade() -> None:
    op.drop_table('vote_marks')
