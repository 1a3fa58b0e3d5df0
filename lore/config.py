"""Settings: the one place that reads the environment (and `.env`)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The chat model used with an OpenAI key and no LORE_CHAT_MODEL.
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
# Used with OPENAI_BASE_URL and no LORE_CHAT_MODEL: single-model servers (llama.cpp) answer whatever the name.
DEFAULT_LOCAL_MODEL = "local-model"


class ConfigError(ValueError):
    """A setting is missing or invalid for what the user asked to do."""


class Settings(BaseSettings):
    """Every environment variable Lore reads. See ARCHITECTURE.md, Environment."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    lore_home: Path = Field(default=Path("~/.lore"), validation_alias="LORE_HOME")
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", validation_alias="SLACK_API_URL")
    # Sign in with Slack (OpenID Connect) for the web console.
    slack_client_id: str | None = Field(default=None, validation_alias="SLACK_CLIENT_ID")
    slack_client_secret: SecretStr | None = Field(default=None, validation_alias="SLACK_CLIENT_SECRET")
    # The workspace(s) whose members may sign in (team ids, comma-separated); unset: the bot token's (auth.test).
    slack_team_id: str = Field(default="", validation_alias="SLACK_TEAM_ID")
    # Web console: the key that signs session cookies (unset: a random one kept under LORE_HOME), and how long a
    # sign-in lasts.
    console_secret: SecretStr | None = Field(default=None, validation_alias="LORE_CONSOLE_SECRET")
    console_session_hours: float = Field(default=12.0, gt=0, validation_alias="LORE_CONSOLE_SESSION_HOURS")

    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    chat_model: str | None = Field(default=None, validation_alias="LORE_CHAT_MODEL")
    embeddings: str = Field(default="local", validation_alias="LORE_EMBEDDINGS")

    agent_mode: str = Field(default="auto", validation_alias="LORE_AGENT")
    # Images shared in a Slack thread go to the chat model when it can see them: `auto` decides by the model's name
    # (lore.llm.supports_vision), `on` sends them to any configured model, `off` never; and the largest image sent.
    vision: str = Field(default="auto", validation_alias="LORE_VISION")
    vision_max_mb: float = Field(default=5.0, gt=0, validation_alias="LORE_VISION_MAX_MB")
    best_of: int = Field(default=1, ge=1, le=8, validation_alias="LORE_BEST_OF")
    llm_timeout_s: float = Field(default=60.0, gt=0, validation_alias="LORE_LLM_TIMEOUT")
    # Completion tokens an answer may use: a few paragraphs with citations, never an endless loop.
    max_answer_tokens: int = Field(default=700, ge=32, le=32768, validation_alias="LORE_MAX_ANSWER_TOKENS")
    max_file_mb: float = Field(default=50.0, gt=0, validation_alias="LORE_MAX_FILE_MB")
    chunk_words: int = Field(default=160, ge=20, le=2000, validation_alias="LORE_CHUNK_WORDS")
    embed_batch: int = Field(default=64, ge=1, le=4096, validation_alias="LORE_EMBED_BATCH")
    # Connections writing one large incremental batch at once (HNSW insertion is per backend): the cores.
    ingest_writers: int = Field(
        default_factory=lambda: max(1, min(4, os.cpu_count() or 1)), ge=1, le=16, validation_alias="LORE_INGEST_WRITERS"
    )
    log_level: str = Field(default="INFO", validation_alias="LORE_LOG_LEVEL")
    up_reactions: str = Field(default="+1,thumbsup", validation_alias="LORE_UP_REACTIONS")
    down_reactions: str = Field(default="-1,thumbsdown", validation_alias="LORE_DOWN_REACTIONS")
    regenerate_reactions: str = Field(default="repeat", validation_alias="LORE_REGENERATE_REACTIONS")
    # After a 👍 on an answer with several sources, ask the voter (ephemerally, once) which one answered it.
    ask_which_source: bool = Field(default=True, validation_alias="LORE_ASK_WHICH_SOURCE")
    admin_users: str = Field(default="", validation_alias="LORE_ADMIN_USERS")
    opt_out_channels: str = Field(default="", validation_alias="LORE_OPT_OUT_CHANNELS")
    live_index_channels: str = Field(default="", validation_alias="LORE_LIVE_INDEX_CHANNELS")
    # Answers: cosine a retrieved chunk must reach to count as relevant (below it: "I don't know"), chunks per answer.
    min_similarity: float = Field(default=0.3, ge=0, le=1, validation_alias="LORE_MIN_SIMILARITY")
    answer_k: int = Field(default=6, ge=1, le=50, validation_alias="LORE_ANSWER_K")
    # Ingest (ingest/): documents per Celery task, web crawl limits and politeness, Slack sync period.
    ingest_batch_docs: int = Field(default=25, ge=1, le=10000, validation_alias="LORE_INGEST_BATCH_DOCS")
    crawl_depth: int = Field(default=0, ge=0, le=10, validation_alias="LORE_CRAWL_DEPTH")
    crawl_max_pages: int = Field(default=100, ge=1, le=100000, validation_alias="LORE_CRAWL_MAX_PAGES")
    crawl_delay_s: float = Field(default=1.0, ge=0, validation_alias="LORE_CRAWL_DELAY")
    http_timeout_s: float = Field(default=20.0, gt=0, validation_alias="LORE_HTTP_TIMEOUT")
    slack_sync_minutes: float = Field(default=15.0, gt=0, validation_alias="LORE_SLACK_SYNC_MINUTES")
    # Redis redelivers an unacknowledged task after this long (a worker died mid-task); tests make it short.
    celery_visibility_timeout_s: int = Field(default=3600, ge=1, validation_alias="LORE_CELERY_VISIBILITY_TIMEOUT")
    # Slack bot (bot/): stream answers with chat.startStream (falls back to post-then-update), threads for slow work.
    slack_streaming: bool = Field(default=True, validation_alias="LORE_SLACK_STREAMING")
    # Files shared in a thread are read for that thread's answers only: limits per file and per thread, and how
    # long (hours after they were shared) they stay in use.
    slack_file_max_mb: float = Field(default=20.0, gt=0, validation_alias="LORE_SLACK_FILE_MAX_MB")
    slack_thread_files_max: int = Field(default=10, ge=0, validation_alias="LORE_SLACK_THREAD_FILES_MAX")
    slack_thread_files_max_mb: float = Field(default=50.0, gt=0, validation_alias="LORE_SLACK_THREAD_FILES_MAX_MB")
    slack_file_retention_hours: float = Field(default=24.0, gt=0, validation_alias="LORE_SLACK_FILE_RETENTION_HOURS")
    # Where "Ask a human" posts when a channel names no escalation target of its own (/lore config).
    escalation_channel: str | None = Field(default=None, validation_alias="LORE_ESCALATION_CHANNEL")
    # A channel in `auto` mode (/lore config) is answered without a mention only when the best passage is at least
    # this similar to the question; otherwise Lore stays silent.
    auto_answer_min_similarity: float = Field(
        default=0.55, ge=-1, le=1, validation_alias="LORE_AUTO_ANSWER_MIN_SIMILARITY"
    )
    bot_threads: int = Field(default=16, ge=1, le=256, validation_alias="LORE_BOT_THREADS")
    bot_processes: int = Field(default=2, ge=0, le=32, validation_alias="LORE_BOT_PROCESSES")
    # An answer process is replaced by a fresh one after this many answers (0: never), bounding its memory.
    bot_max_answers: int = Field(default=1000, ge=0, validation_alias="LORE_BOT_MAX_ANSWERS")
    http_host: str = Field(default="0.0.0.0", validation_alias="LORE_HOST")
    http_port: int = Field(default=3000, ge=1, le=65535, validation_alias=AliasChoices("LORE_PORT", "PORT"))
    # Feedback memory: cosine a past question must reach for its votes to count, and the most it moves a score
    # (chosen by bench/learning.py on its pooled questions; docs/benchmarks.md).
    feedback_threshold: float = Field(default=0.40, ge=0, le=1, validation_alias="LORE_FEEDBACK_THRESHOLD")
    feedback_weight: float = Field(default=0.4, ge=0, le=1, validation_alias="LORE_FEEDBACK_WEIGHT")
    # How long the bot waits for the broker before writing feedback straight to PostgreSQL.
    feedback_broker_timeout_s: float = Field(default=1.0, gt=0, validation_alias="LORE_FEEDBACK_BROKER_TIMEOUT")

    @field_validator("embeddings")
    @classmethod
    def _check_embeddings(cls, value: str) -> str:
        if value != "local" and not value.startswith("openai:"):
            raise ValueError("LORE_EMBEDDINGS must be 'local' or 'openai:<model>'")
        return value

    @field_validator("agent_mode")
    @classmethod
    def _check_agent_mode(cls, value: str) -> str:
        if value not in {"auto", "tools", "chain"}:
            raise ValueError("LORE_AGENT must be one of auto, tools, chain")
        return value

    @field_validator("vision")
    @classmethod
    def _check_vision(cls, value: str) -> str:
        if value not in {"auto", "on", "off"}:
            raise ValueError("LORE_VISION must be one of auto, on, off")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://", "amqp://", "amqps://")):
            raise ValueError("REDIS_URL must start with redis://, rediss://, unix://, amqp:// or amqps://")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("DATABASE_URL must be a postgresql:// URL (or unset for the embedded server)")
        return value

    @property
    def home(self) -> Path:
        return _resolved(self.lore_home)

    @property
    def effective_chat_model(self) -> str | None:
        """The chat model in use, or None for search-only answers."""
        if self.chat_model:
            return self.chat_model
        if self.openai_api_key is not None:
            return DEFAULT_OPENAI_MODEL
        if self.openai_base_url:
            return DEFAULT_LOCAL_MODEL
        return None

    @property
    def broker_is_amqp(self) -> bool:
        """REDIS_URL names a RabbitMQ (AMQP) broker rather than Redis."""
        return self.redis_url.startswith(("amqp://", "amqps://"))

    def csv(self, name: str) -> list[str]:
        """Split a comma-separated setting such as `up_reactions` into a clean list."""
        raw: str = getattr(self, name)
        return [item.strip() for item in raw.split(",") if item.strip()]

    def require_http(self) -> None:
        if self.slack_signing_secret is None:
            raise ConfigError("SLACK_SIGNING_SECRET is required for --http")
        if self.slack_bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN is required for --http")

    def require_socket(self) -> None:
        if self.slack_app_token is None:
            raise ConfigError("SLACK_APP_TOKEN (xapp-…) is required for --socket")
        if self.slack_bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN is required for --socket")

    @property
    def slack_configured(self) -> bool:
        return self.slack_bot_token is not None and (
            self.slack_app_token is not None or self.slack_signing_secret is not None
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def describe_validation_error(exc: Exception) -> str:
    """One line per bad variable, naming the variable, for the CLI edge."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    lines = []
    for err in errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        lines.append(f"{loc.upper()}: {err.get('msg', 'invalid')}")
    return "; ".join(lines)


@lru_cache(maxsize=64)
def _resolved(path: Path) -> Path:
    """A home path made absolute, once per spelling: resolving costs file-system calls, and the home is looked
    up on every search (it keys the database URL and the feedback memory)."""
    return path.expanduser().resolve()
