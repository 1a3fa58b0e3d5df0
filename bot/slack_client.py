"""The Slack Web API client every part of the bot uses: token and base URL from settings, 429s waited out."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from lore.config import ConfigError, Settings


def create_client(settings: Settings) -> WebClient:
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is required to run the Slack bot")
    client = WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url, timeout=15)
    # Slack answers 429 with Retry-After under load: wait and retry rather than drop an answer.
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client
