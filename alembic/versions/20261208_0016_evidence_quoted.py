"""feedback evidence recomputed: a 👍 on a search-only answer also credits the sources of the sentences it quotes

A search-only answer shows the sentences that answer ("> sentence [n]"), then its sources. Its 👍 credited only its
top source; it now credits the quoted sources too (lore.feedback_memory.QUOTED_MAIN), so a right page quoted from
second place is not passed by the top source it was shown under. The tables keep their shape; the evidence of every
answer with feedback is recomputed here by the rules of the installed code (lore.feedback_memory.refresh_all, which
runs in this migration's transaction).

Revision ID: 0016_evidence_quoted
Revises: 0015_source_picks
Create Date: 2026-12-08 01:00:00
"""

from collections.abc import Sequence

from alembic import op
from lore.feedback_memory import refresh_all

revision: str = "0016_evidence_quoted"
down_revision: str | None = "0015_source_picks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    refresh_all(op.get_bind().connection.driver_connection)


def downgrade() -> None:
    """Nothing to undo: the evidence keeps its shape (the previous release recomputes it as its votes change)."""
