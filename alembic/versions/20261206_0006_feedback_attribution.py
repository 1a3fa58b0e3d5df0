"""feedback evidence recomputed: a vote speaks for the answer's main sources, a downvote only against its lead

Revision ID: 0006_feedback_attribution
Revises: 0005_chunks_carry_document
Create Date: 2026-12-06 10:30:00

The meaning of feedback_evidence changes (lore.feedback_memory's docstring has the rules): a 👍 credits the sources
an answer cited inline, else its top source (no longer every source at 1/rank); a 👎 counts only against the source
the answer led with; comparisons now count. The table keeps its shape; its rows are recomputed here in plain SQL,
frozen as the application computes them at this revision, so the migration never imports application code.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_feedback_attribution"
down_revision: str | None = "0005_chunks_carry_document"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Wilson z^2 (z = 1.96), COMPARISON_SCORE 1.0 and CORRECTION_SCORE 0.8, as lore.feedback_memory has them here.
_EVIDENCE = r"""
WITH ids AS (
    SELECT answer_id AS id FROM votes
    UNION SELECT chosen_id FROM comparisons
    UNION SELECT answer_id FROM critiques WHERE source_uri IS NOT NULL
),
compared AS (
    SELECT chosen_id, rejected_id, count(*)::double precision AS n
    FROM comparisons GROUP BY chosen_id, rejected_id
),
ans AS (
    SELECT a.id, a.answer, a.citations, a.chunk_ids,
           a.model <> 'search-only' AND coalesce(a.generation->>'generated', 'true') <> 'false' AS generated
    FROM answers a
    WHERE a.id IN (SELECT id FROM ids) OR a.id IN (SELECT rejected_id FROM compared)
),
inline AS (
    SELECT ans.id AS answer_id, d.id AS document_id, (c->>'number')::int AS number,
           strpos(ans.answer, substring(ans.answer
               FROM '\[(?:\d+\s*[,;]\s*)*' || (c->>'number') || '(?:\s*[,;]\s*\d+)*\]')) AS pos
    FROM ans
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(ans.citations) = 'array' THEN ans.citations ELSE '[]'::jsonb END) c
    JOIN documents d ON d.uri = c->>'uri'
    WHERE ans.generated AND (c->>'number') ~ '^[0-9]+$'
),
lead AS (
    SELECT ans.id AS answer_id, coalesce(
        (SELECT i.document_id FROM inline i WHERE i.answer_id = ans.id AND i.pos > 0
         ORDER BY i.pos, i.number LIMIT 1),
        (SELECT ch.document_id FROM chunks ch WHERE ch.id = ans.chunk_ids[1])) AS document_id
    FROM ans
),
main AS (
    SELECT answer_id, document_id FROM inline WHERE pos > 0
    UNION SELECT answer_id, document_id FROM lead WHERE document_id IS NOT NULL
),
scored AS (
    SELECT answer_id, sum(value)::double precision / (count(*) + 3.8416) AS s FROM votes GROUP BY answer_id
),
e AS (
    SELECT s.answer_id, m.document_id, s.s AS w FROM scored s JOIN main m USING (answer_id) WHERE s.s > 0
    UNION ALL
    SELECT s.answer_id, l.document_id, s.s FROM scored s JOIN lead l USING (answer_id)
    WHERE s.s < 0 AND l.document_id IS NOT NULL
    UNION ALL
    SELECT p.chosen_id, m.document_id, 1.0 * p.n / (p.n + 1)
    FROM compared p JOIN main m ON m.answer_id = p.chosen_id
    UNION ALL
    SELECT p.chosen_id, l.document_id, -1.0 * p.n / (p.n + 1)
    FROM compared p JOIN lead l ON l.answer_id = p.rejected_id
    WHERE l.document_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM main m WHERE m.answer_id = p.chosen_id AND m.document_id = l.document_id)
    UNION ALL
    SELECT cr.answer_id, d.id, 0.8 FROM critiques cr JOIN documents d ON d.uri = cr.source_uri
)
INSERT INTO feedback_evidence (answer_id, document_id, w)
SELECT answer_id, document_id, sum(w) FROM e
GROUP BY answer_id, document_id
HAVING sum(w) <> 0
"""


def upgrade() -> None:
    bind = op.get_bind()
    bind.exec_driver_sql("DELETE FROM feedback_evidence")
    bind.exec_driver_sql(_EVIDENCE)
    bind.exec_driver_sql(
        "DELETE FROM feedback_answers f"
        " WHERE NOT EXISTS (SELECT 1 FROM feedback_evidence e WHERE e.answer_id = f.answer_id)"
    )
    bind.exec_driver_sql(
        "INSERT INTO feedback_answers (answer_id, question_embedding)"
        " SELECT a.id, a.question_embedding FROM answers a"
        " WHERE a.question_embedding IS NOT NULL"
        " AND EXISTS (SELECT 1 FROM feedback_evidence e WHERE e.answer_id = a.id)"
        " ON CONFLICT (answer_id) DO NOTHING"
    )
    # Searching processes reload the memory when the version moves.
    bind.exec_driver_sql(
        "INSERT INTO feedback_state (id, version) VALUES (1, 1)"
        " ON CONFLICT (id) DO UPDATE SET version = feedback_state.version + 1"
    )


def downgrade() -> None:
    # The rows keep their shape; the older rules' evidence is not rebuilt (the application of that revision
    # recomputes an answer's evidence whenever its feedback changes).
    pass
