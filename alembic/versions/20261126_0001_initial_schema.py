"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 23:41:09.741185
"""

from collections.abc import Sequence

import sqlalchemy as sa
import pgvector.sqlalchemy
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # pgvector must exist before any vector column; it is left in place on downgrade (other schemas may use it).
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table('answers',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('team_id', sa.Text(), nullable=True),
    sa.Column('channel_id', sa.Text(), nullable=True),
    sa.Column('message_ts', sa.Text(), nullable=True),
    sa.Column('thread_ts', sa.Text(), nullable=True),
    sa.Column('user_id', sa.Text(), nullable=True),
    sa.Column('surface', sa.Text(), server_default='cli', nullable=False),
    sa.Column('private', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('question_embedding', pgvector.sqlalchemy.vector.VECTOR(dim=384), nullable=True),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('model', sa.Text(), nullable=False),
    sa.Column('prompt', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('citations', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('chunk_ids', sa.ARRAY(sa.BigInteger()), server_default=sa.text("'{}'::bigint[]"), nullable=False),
    sa.Column('generation', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=True),
    sa.Column('completion_tokens', sa.Integer(), nullable=True),
    sa.Column('parent_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['answers.id'], name=op.f('fk_answers_parent_id_answers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_answers')),
    sa.UniqueConstraint('channel_id', 'message_ts', name=op.f('uq_answers_channel_id_message_ts'))
    )
    op.create_index(op.f('ix_answers_created_at'), 'answers', ['created_at'], unique=False)
    op.create_index(op.f('ix_answers_parent_id'), 'answers', ['parent_id'], unique=False)
    op.create_index('ix_answers_question_embedding_hnsw', 'answers', ['question_embedding'], unique=False, postgresql_using='hnsw', postgresql_with={'m': 16, 'ef_construction': 64}, postgresql_ops={'question_embedding': 'vector_cosine_ops'})
    op.create_table('channel_settings',
    sa.Column('channel_id', sa.Text(), nullable=False),
    sa.Column('live_index', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('feedback_opt_out', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('channel_id', name=op.f('pk_channel_settings'))
    )
    op.create_table('documents',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('title', sa.Text(), server_default='', nullable=False),
    sa.Column('source_kind', sa.Text(), server_default='file', nullable=False),
    sa.Column('source_root', sa.Text(), nullable=True),
    sa.Column('content_hash', sa.Text(), nullable=False),
    sa.Column('acl', sa.ARRAY(sa.Text()), server_default=sa.text("ARRAY['public']::text[]"), nullable=False),
    sa.Column('meta', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_documents')),
    sa.UniqueConstraint('uri', name=op.f('uq_documents_uri'))
    )
    op.create_index(op.f('ix_documents_source_root'), 'documents', ['source_root'], unique=False)
    op.create_table('ingest_jobs',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('status', sa.Text(), server_default='queued', nullable=False),
    sa.Column('sources', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('acl', sa.ARRAY(sa.Text()), nullable=True),
    sa.Column('batches_total', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('batches_done', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('counts', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('errors', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_ingest_jobs_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_jobs'))
    )
    op.create_table('slack_events',
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), server_default='', nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_slack_events'))
    )
    op.create_index(op.f('ix_slack_events_received_at'), 'slack_events', ['received_at'], unique=False)
    op.create_table('sync_cursors',
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('cursor', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('source', name=op.f('pk_sync_cursors'))
    )
    op.create_table('chunks',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('document_id', sa.BigInteger(), nullable=False),
    sa.Column('ord', sa.Integer(), nullable=False),
    sa.Column('heading', sa.Text(), server_default='', nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('text_hash', sa.Text(), nullable=False),
    sa.Column('embedding', pgvector.sqlalchemy.vector.VECTOR(dim=384), nullable=False),
    sa.Column('tsv', postgresql.TSVECTOR(), sa.Computed("to_tsvector('english'::regconfig, heading || ' ' || text)", persisted=True), nullable=False),
    sa.Column('acl', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('boost', sa.Float(), server_default=sa.text('0'), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_chunks_document_id_documents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chunks')),
    sa.UniqueConstraint('document_id', 'ord', name=op.f('uq_chunks_document_id_ord'))
    )
    op.create_index('ix_chunks_acl', 'chunks', ['acl'], unique=False, postgresql_using='gin')
    op.create_index('ix_chunks_embedding_hnsw', 'chunks', ['embedding'], unique=False, postgresql_using='hnsw', postgresql_with={'m': 16, 'ef_construction': 64}, postgresql_ops={'embedding': 'vector_cosine_ops'})
    op.create_index(op.f('ix_chunks_text_hash'), 'chunks', ['text_hash'], unique=False)
    op.create_index('ix_chunks_tsv', 'chunks', ['tsv'], unique=False, postgresql_using='gin')
    op.create_table('comparisons',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('chosen_id', sa.BigInteger(), nullable=False),
    sa.Column('rejected_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['chosen_id'], ['answers.id'], name=op.f('fk_comparisons_chosen_id_answers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rejected_id'], ['answers.id'], name=op.f('fk_comparisons_rejected_id_answers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comparisons')),
    sa.UniqueConstraint('chosen_id', 'rejected_id', 'user_id', name=op.f('uq_comparisons_chosen_id_rejected_id_user_id'))
    )
    op.create_table('critiques',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('answer_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('critique', sa.Text(), server_default='', nullable=False),
    sa.Column('correction', sa.Text(), nullable=True),
    sa.Column('source_uri', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['answer_id'], ['answers.id'], name=op.f('fk_critiques_answer_id_answers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_critiques')),
    sa.UniqueConstraint('answer_id', 'user_id', name=op.f('uq_critiques_answer_id_user_id'))
    )
    op.create_table('ingest_batches',
    sa.Column('job_id', sa.BigInteger(), nullable=False),
    sa.Column('batch_no', sa.Integer(), nullable=False),
    sa.Column('sources', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('done', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('counts', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('errors', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['ingest_jobs.id'], name=op.f('fk_ingest_batches_job_id_ingest_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'batch_no', name=op.f('pk_ingest_batches'))
    )
    op.create_table('votes',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('answer_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('value', sa.SmallInteger(), nullable=False),
    sa.Column('via', sa.Text(), server_default='reaction', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('value IN (-1, 1)', name=op.f('ck_votes_value')),
    sa.ForeignKeyConstraint(['answer_id'], ['answers.id'], name=op.f('fk_votes_answer_id_answers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_votes')),
    sa.UniqueConstraint('answer_id', 'user_id', name=op.f('uq_votes_answer_id_user_id'))
    )


def downgrade() -> None:
    op.drop_table('votes')
    op.drop_table('ingest_batches')
    op.drop_table('critiques')
    op.drop_table('comparisons')
    op.drop_index('ix_chunks_tsv', table_name='chunks', postgresql_using='gin')
    op.drop_index(op.f('ix_chunks_text_hash'), table_name='chunks')
    op.drop_index('ix_chunks_embedding_hnsw', table_name='chunks', postgresql_using='hnsw', postgresql_with={'m': 16, 'ef_construction': 64}, postgresql_ops={'embedding': 'vector_cosine_ops'})
    op.drop_index('ix_chunks_acl', table_name='chunks', postgresql_using='gin')
    op.drop_table('chunks')
    op.drop_table('sync_cursors')
    op.drop_index(op.f('ix_slack_events_received_at'), table_name='slack_events')
    op.drop_table('slack_events')
    op.drop_table('ingest_jobs')
    op.drop_index(op.f('ix_documents_source_root'), table_name='documents')
    op.drop_table('documents')
    op.drop_table('channel_settings')
    op.drop_index('ix_answers_question_embedding_hnsw', table_name='answers', postgresql_using='hnsw', postgresql_with={'m': 16, 'ef_construction': 64}, postgresql_ops={'question_embedding': 'vector_cosine_ops'})
    op.drop_index(op.f('ix_answers_parent_id'), table_name='answers')
    op.drop_index(op.f('ix_answers_created_at'), table_name='answers')
    op.drop_table('answers')
