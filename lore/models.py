"""Every table of Lore: the one schema definition that Alembic migrations are generated from."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy import (
    text as sql,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Defined with the value types so that search loads no ORM; re-exported here, where the tables use them.
from lore.types import EMBEDDING_DIM as EMBEDDING_DIM
from lore.types import PUBLIC as PUBLIC

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Document(Base):
    """One source: a file, a web page, or a Slack channel's messages (or one thread)."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    uri: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    title: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    source_kind: Mapped[str] = mapped_column(Text, nullable=False, server_default="file")
    # The directory or site root a document was found under: a sync of that root deletes what vanished.
    source_root: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(Text, nullable=False)
    # Channel ids that may see this document, or ['public'].
    acl: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=sql("ARRAY['public']::text[]"))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=sql("'{}'::jsonb"))
    # The page vector: the normalized mean of its passages' embeddings (lore.db.refresh_page_vectors), which
    # hybrid search weighs with a passage's own similarity; NULL for a document of fewer than two passages.
    embedding: Mapped[Any | None] = mapped_column(Vector(EMBEDDING_DIM))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (Index(None, "source_root"),)


class Chunk(Base):
    """A retrievable passage of a document, with its embedding and full-text vector."""

    __tablename__ = "chunks"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    document_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("documents.id", ondelete="CASCADE"), nullable=False)
    ord: Mapped[int] = mapped_column(Integer, nullable=False)
    heading: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    text: Mapped[str] = mapped_column(Text, nullable=False)
    # sha256 of the text: identical text is embedded once and its vector reused.
    text_hash: Mapped[str] = mapped_column(Text, nullable=False)
    embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIM), nullable=False)
    # The next embedder's vectors while a switch re-embeds (lore.embedder_registry); NULL otherwise.
    embedding_next: Mapped[Any | None] = mapped_column(Vector(EMBEDDING_DIM))
    tsv: Mapped[Any] = mapped_column(
        TSVECTOR,
        Computed("to_tsvector('english'::regconfig, heading || ' ' || text)", persisted=True),
    )
    # Copied from the document so the permission filter runs inside the index scan, without a join.
    acl: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    # Copied from the document too, so a vector search reads each hit from its index scan row alone.
    uri: Mapped[str] = mapped_column(Text, nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (
        UniqueConstraint("document_id", "ord"),
        Index(None, "text_hash"),
        Index(
            "ix_chunks_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        Index("ix_chunks_tsv", "tsv", postgresql_using="gin"),
        Index("ix_chunks_acl", "acl", postgresql_using="gin"),
        # Rows stay whole in the heap (no TOAST): see migration 0004.
        {"postgresql_with": {"toast_tuple_target": 8160}},
    )


class Answer(Base):
    """Every answer Lore gave: what feedback attaches to and what exports read."""

    __tablename__ = "answers"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    team_id: Mapped[str | None] = mapped_column(Text)
    channel_id: Mapped[str | None] = mapped_column(Text)
    # The Slack message that carries the answer, and the thread it is in.
    message_ts: Mapped[str | None] = mapped_column(Text)
    thread_ts: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    # Where the question came from: slack, cli, api; and whether its context was private.
    surface: Mapped[str] = mapped_column(Text, nullable=False, server_default="cli")
    private: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sql("false"))
    question: Mapped[str] = mapped_column(Text, nullable=False)
    question_embedding: Mapped[Any | None] = mapped_column(Vector(EMBEDDING_DIM))
    # The next embedder's vector of the question while a switch re-embeds (lore.embedder_registry).
    question_embedding_next: Mapped[Any | None] = mapped_column(Vector(EMBEDDING_DIM))
    answer: Mapped[str] = mapped_column(Text, nullable=False)
    model: Mapped[str] = mapped_column(Text, nullable=False)
    # The exact messages the model saw (system prompt, fenced context, history, question).
    prompt: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, server_default=sql("'[]'"))
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, server_default=sql("'[]'"))
    chunk_ids: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), nullable=False, server_default=sql("'{}'::bigint[]")
    )
    generation: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=sql("'{}'"))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("answers.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()

    __table_args__ = (
        UniqueConstraint("channel_id", "message_ts"),
        Index(None, "parent_id"),
        # The Feedback page counts a day's answers and its latency percentiles from this index alone, and finds
        # the channel of each vote's answer from the next.
        Index(None, "created_at", postgresql_include=["latency_ms", "id"]),
        Index(None, "id", postgresql_include=["channel_id", "surface"]),
        Index(
            "ix_answers_question_embedding_hnsw",
            "question_embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"question_embedding": "vector_cosine_ops"},
        ),
    )


class Vote(Base):
    """A user's current vote on an answer: one row per answer and user, the latest wins."""

    __tablename__ = "votes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    answer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("answers.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[str] = mapped_column(Text, nullable=False)
    value: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    via: Mapped[str] = mapped_column(Text, nullable=False, server_default="reaction")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (
        UniqueConstraint("answer_id", "user_id"),
        CheckConstraint("value IN (-1, 1)", name="value"),
        # The console's Feedback page: votes by when they were cast (counted from the index alone), and the
        # downvotes alone.
        Index(None, "updated_at", postgresql_include=["value", "id", "answer_id"]),
        Index("ix_votes_down", "answer_id", postgresql_where=sql("value < 0")),
    )


class VoteMark(Base):
    """The latest event of each reaction kind (up or down) per answer and user, by Slack event time.

    `votes` is recomputed from these marks, so a redelivered or reordered event (an old "removed" after a
    newer "added") can never undo a newer one: an event older than its mark is ignored.
    """

    __tablename__ = "vote_marks"

    answer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    present: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # Slack's event_ts (seconds with microseconds) or the time the event was first seen.
    event_ts: Mapped[Decimal] = mapped_column(Numeric(20, 6), nullable=False)
    via: Mapped[str] = mapped_column(Text, nullable=False, server_default="reaction")

    __table_args__ = (CheckConstraint("value IN (-1, 1)", name="value"),)


class FeedbackAnswer(Base):
    """An answer whose votes or correction are evidence for the feedback memory, with its question's embedding.

    Searching processes hold these (and their evidence) in memory (lore.feedback_memory.FeedbackIndex).
    """

    __tablename__ = "feedback_answers"

    answer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True)
    question_embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIM), nullable=False)


class FeedbackState(Base):
    """One row: a version bumped by every change of the feedback evidence, so searching processes know when
    to reload their copy of the feedback memory."""

    __tablename__ = "feedback_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=sql("0"))

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class FeedbackEvidence(Base):
    """What an answer's feedback says about each document it used: the weight `w` the feedback memory adds
    (scaled by question similarity) to that document. Recomputed whenever the answer's votes or
    corrections change, so a search only sums precomputed rows. `named`: a correction on the answer named the
    document (such evidence holds whatever the query's match: lore.feedback_memory)."""

    __tablename__ = "feedback_evidence"

    answer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True)
    document_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    w: Mapped[float] = mapped_column(Float, nullable=False)
    named: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sql("false"))


class FeedbackDay(Base):
    """The console Feedback page's figures for one closed UTC day (web/stats.py), kept while the day's stamp
    (what they were computed from) still holds, so a page view reads a month of these instead of its answers."""

    __tablename__ = "feedback_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    # The day's answers (count, largest id) and votes by when last cast (count, sum of values, largest id).
    stamp: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), nullable=False)
    answers: Mapped[int] = mapped_column(Integer, nullable=False)
    latency_p50: Mapped[float | None] = mapped_column(Float)
    latency_p95: Mapped[float | None] = mapped_column(Float)
    up: Mapped[int] = mapped_column(Integer, nullable=False)
    down: Mapped[int] = mapped_column(Integer, nullable=False)
    # Votes by the channel of their answer: {"C123": [up, down], "(web)": [up, down]}.
    channels: Mapped[dict[str, list[int]]] = mapped_column(JSONB, nullable=False, server_default=sql("'{}'"))
    computed_at: Mapped[datetime] = _created()


class Comparison(Base):
    """A user's choice between two answers to the same question."""

    __tablename__ = "comparisons"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    chosen_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("answers.id", ondelete="CASCADE"), nullable=False)
    rejected_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("answers.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _created()

    __table_args__ = (UniqueConstraint("chosen_id", "rejected_id", "user_id"),)


class Critique(Base):
    """What a user said was wrong with an answer, and optionally the right answer."""

    __tablename__ = "critiques"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    answer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("answers.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[str] = mapped_column(Text, nullable=False)
    critique: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    correction: Mapped[str | None] = mapped_column(Text)
    # The source the correction points to, when it names one (strong evidence for the feedback memory).
    source_uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()

    __table_args__ = (UniqueConstraint("answer_id", "user_id"),)


class SourcePick(Base):
    """Which of an upvoted answer's sources answered the question, as its voter said ("Which source answered it?").

    It redirects that user's 👍 from the answer's main sources to the page named; it counts only while the user's
    vote on the answer is a 👍 (lore.feedback_memory)."""

    __tablename__ = "source_picks"

    answer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    source_uri: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _created()


class EmbedderModel(Base):
    """A fine-tuned copy of the offline embedder (`lore finetune embedder`): its directory under LORE_HOME and
    how it fared on held-out questions against the model it would replace."""

    __tablename__ = "embedder_models"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    # Relative to LORE_HOME (a moved home keeps working).
    path: Mapped[str] = mapped_column(Text, nullable=False)
    base: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="trained")
    pairs: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql("0"))
    before_mrr: Mapped[float | None] = mapped_column(Float)
    after_mrr: Mapped[float | None] = mapped_column(Float)
    report: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=sql("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created()
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("status IN ('trained', 'rejected', 'active', 'retired')", name="status"),)


class EmbedderState(Base):
    """One row: which embedder the stored vectors come from (NULL: the bundled all-MiniLM-L6-v2), a version
    bumped by every switch (every process's query embedder follows it), and the switch in progress, if any."""

    __tablename__ = "embedder_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    active: Mapped[str | None] = mapped_column(Text, ForeignKey("embedder_models.name"))
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=sql("0"))
    # The model whose vectors the shadow columns (chunks.embedding_next, ...) hold, while a switch fills them.
    shadow: Mapped[str | None] = mapped_column(Text)
    # Set for the last seconds of a switch: processes wait for the flip instead of embedding with the old model.
    switching_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class EvalRun(Base):
    """A run of the console's Eval page: a question set (kept, to run again) evaluated in every search mode."""

    __tablename__ = "eval_runs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    questions: Mapped[int] = mapped_column(Integer, nullable=False)
    k: Mapped[int] = mapped_column(Integer, nullable=False)
    # One {"mode", "n", "recall@k", "mrr", "ndcg@10", "k"} per mode, as `lore eval retrieval --json` prints them.
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, server_default=sql("'[]'"))
    question_set: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _created()

    __table_args__ = (Index(None, "created_at"),)


class IngestJob(Base):
    """A queued ingest: its sources, status, counts and errors."""

    __tablename__ = "ingest_jobs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="queued")
    sources: Mapped[list[str]] = mapped_column(JSONB, nullable=False, server_default=sql("'[]'"))
    acl: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    batches_total: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql("0"))
    batches_done: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql("0"))
    counts: Mapped[dict[str, int]] = mapped_column(JSONB, nullable=False, server_default=sql("'{}'"))
    errors: Mapped[list[dict[str, str]]] = mapped_column(JSONB, nullable=False, server_default=sql("'[]'"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),)


class IngestBatch(Base):
    """One Celery task's share of an ingest job; `done` makes a redelivered task a no-op."""

    __tablename__ = "ingest_batches"

    job_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ingest_jobs.id", ondelete="CASCADE"), primary_key=True)
    batch_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sources: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    done: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sql("false"))
    counts: Mapped[dict[str, int]] = mapped_column(JSONB, nullable=False, server_default=sql("'{}'"))
    errors: Mapped[list[dict[str, str]]] = mapped_column(JSONB, nullable=False, server_default=sql("'[]'"))


class SlackEvent(Base):
    """Slack deliveries already handled: event ids, and message keys that both an app_mention and a
    message event share, so retries and replicas never answer twice."""

    __tablename__ = "slack_events"

    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    received_at: Mapped[datetime] = _created()

    __table_args__ = (Index(None, "received_at"),)


class SyncCursor(Base):
    """Where an incremental sync (a Slack channel's history) stopped."""

    __tablename__ = "sync_cursors"

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    cursor: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[datetime] = _created()


class ChannelSetting(Base):
    """Per-channel switches: live indexing of new messages, opting out of feedback collection, where Lore answers
    (`/lore config`: mention, off, auto), the uri prefixes its answers there may draw on, and who is asked when
    Lore cannot help."""

    __tablename__ = "channel_settings"

    channel_id: Mapped[str] = mapped_column(Text, primary_key=True)
    live_index: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sql("false"))
    feedback_opt_out: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sql("false"))
    updated_at: Mapped[datetime] = _created()
    mode: Mapped[str] = mapped_column(Text, nullable=False, server_default="mention")
    source_prefixes: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=sql("'{}'"))
    escalation_target: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (CheckConstraint("mode IN ('mention', 'off', 'auto')", name="mode"),)


class ApiToken(Base):
    """A personal access token (MCP over HTTP, `lore mcp --token`, the web console and its API): it acts as
    `user_id` with that user's permissions. Only the sha256 of the secret is kept; the secret is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[str] = mapped_column(Text, nullable=False)
    admin: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sql("false"))
    # What it is for ("laptop MCP", "console"), shown by `lore token list`.
    name: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    token_hash: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    # The token's first characters (its prefix and a few of the secret's), to recognise it in a list.
    hint: Mapped[str] = mapped_column(Text, nullable=False)
    # Calls a minute this token may make; NULL: lore.tokens.DEFAULT_RATE_PER_MINUTE.
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(None, "user_id"),
        CheckConstraint("rate_per_minute IS NULL OR rate_per_minute > 0", name="rate_per_minute"),
    )


TABLES = [t.name for t in Base.metadata.sorted_tables]
