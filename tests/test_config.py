"""Settings: defaults, validation, and the clear errors users see."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lore.config import ConfigError, Settings, describe_validation_error


def test_defaults_follow_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("SLACK_API_URL", raising=False)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.slack_api_url == "https://slack.com/api/"
    assert s.embeddings == "local"
    assert s.effective_chat_model is None  # no key, no model: search-only


def test_chat_model_defaults_when_key_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real-000000000000")
    assert Settings(_env_file=None).effective_chat_model == "gpt-4o-mini"  # type: ignore[call-arg]
    monkeypatch.setenv("LORE_CHAT_MODEL", "my-tuned-model")
    assert Settings(_env_file=None).effective_chat_model == "my-tuned-model"  # type: ignore[call-arg]


def test_base_url_alone_names_the_model_answers_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """`lore status` and the answers read one definition: a local server with no model name is not search-only."""
    from lore.llm import get_chat_model

    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    model = get_chat_model(settings)
    assert settings.effective_chat_model == "local-model"
    assert model is not None and model.model_name == settings.effective_chat_model  # type: ignore[attr-defined]


def test_secrets_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1234-secret-token")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "xoxb-1234-secret-token" not in repr(s)
    assert s.slack_bot_token is not None
    assert s.slack_bot_token.get_secret_value() == "xoxb-1234-secret-token"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("LORE_EMBEDDINGS", "bogus", "LORE_EMBEDDINGS must be"),
        ("LORE_AGENT", "magic", "LORE_AGENT must be one of"),
        ("REDIS_URL", "http://x", "REDIS_URL must start with"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL must be a postgresql"),
        ("LORE_BEST_OF", "0", "LORE_BEST_OF"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)  # type: ignore[call-arg]
    message = describe_validation_error(info.value)
    assert name in message
    assert fragment.split()[0] in message


def test_http_mode_requires_signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-x")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET is required for --http"):
        s.require_http()
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        s.require_socket()


def test_dotenv_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("LORE_CHUNK_WORDS", raising=False)
    env = tmp_path / ".env"
    env.write_text("LORE_CHUNK_WORDS=99\n")
    assert Settings(_env_file=str(env)).chunk_words == 99  # type: ignore[call-arg]
