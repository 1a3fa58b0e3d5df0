"""Chat model factory: OpenAI, any OpenAI-compatible server (vLLM, Ollama, llama.cpp), or none (search-only).

Also decides whether a model can drive a tool-calling agent: small local models cannot do so reliably,
so `LORE_AGENT=auto` gives them the fixed retrieve-then-answer chain.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lore.config import Settings

if TYPE_CHECKING:  # LangChain costs a second to import: `lore search` needs only LLMError from here
    from langchain_core.language_models import BaseChatModel

# Sent when a base URL is set without a key: local servers ignore it, the client library requires one.
PLACEHOLDER_KEY = "not-needed"

# Families that call tools reliably (OpenAI's own, and open models trained for it).
_TOOL_CAPABLE = re.compile(
    r"(gpt-4|gpt-5|gpt-3\.5-turbo|^o[134]|qwen2\.5|qwen3|llama-?3\.[1-9]|llama-?4|mistral|mixtral|"
    r"command-r|hermes|firefunction|functionary|granite-3|deepseek-v3|claude|gemini)",
    re.IGNORECASE,
)
# Too small to follow a tool protocol whatever the server says.
_TOO_SMALL = re.compile(r"(smollm|tinyllama|\b(135|360|500)m\b|-(135|360|500)m|0\.5b|qwen2?\.?5?-0\.5b)", re.IGNORECASE)
# Families that read images: OpenAI's multimodal models (not o1-mini or o3-mini), and vision models served by
# OpenAI-compatible servers (LLaVA, Qwen-VL, Llama 3.2 Vision, Pixtral, Gemma 3).
_VISION_CAPABLE = re.compile(
    r"(gpt-4o|gpt-4\.1|gpt-4-turbo|gpt-4-vision|gpt-5|^o1(-\d|$)|^o3(-\d|-pro|$)|^o4|claude-3|claude-(opus|sonnet|"
    r"haiku)|gemini|llava|pixtral|[-_.]vl\b|vision|gemma-?3|minicpm-v|moondream)",
    re.IGNORECASE,
)
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
# Sampling penalties for models behind a local server: strong enough to break a loop, mild enough for prose.
LOCAL_FREQUENCY_PENALTY = 0.3
LOCAL_REPEAT_PENALTY = 1.15
# A stream ends once one sentence of at least this many characters has been written this many times.
REPEAT_MIN_CHARS = 24
REPEAT_LIMIT = 3
_SENTENCE_END = re.compile(r"(?<=[.!?:\n])\s+")
_SENTENCE_BREAK = re.compile(r"((?<=[.!?:\n])\s+)")


class LLMError(RuntimeError):
    """The chat model failed (unreachable, timed out, error reply); the message names the server."""


def get_chat_model(settings: Settings, **overrides: Any) -> BaseChatModel | None:
    """A ChatOpenAI for the configured server and model, or None when no model is configured."""
    name = settings.effective_chat_model
    if name is None:
        return None
    from langchain_openai import ChatOpenAI

    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else PLACEHOLDER_KEY
    options: dict[str, Any] = {
        "model": name,
        "api_key": key,
        "base_url": settings.openai_base_url,
        "timeout": settings.llm_timeout_s,
        "max_retries": 1,
        # Token counts come back on streamed replies too, so every answer row has them.
        "stream_usage": True,
        "max_tokens": settings.max_answer_tokens,
    }
    options.update(overrides)
    if is_local_server(settings.openai_base_url):
        # Small local models fall into loops; llama.cpp's server honours both penalties (OpenAI's own models are
        # left as their provider tunes them). The client sends the cap as `max_completion_tokens`, which
        # llama.cpp's server does not read: it gets `max_tokens` too.
        options.setdefault("frequency_penalty", LOCAL_FREQUENCY_PENALTY)
        options["extra_body"] = {
            "repeat_penalty": LOCAL_REPEAT_PENALTY,
            "max_tokens": options["max_tokens"],
            **options.get("extra_body", {}),
        }
    return ChatOpenAI(**options)


def is_local_server(base_url: str | None) -> bool:
    if not base_url:
        return False
    host = urlsplit(base_url).hostname or ""
    return host in _LOCAL_HOSTS or host.endswith(".local")


def supports_tools(settings: Settings, model: BaseChatModel) -> bool:
    """Whether `auto` should use the tool-calling agent for this model.

    Known tool-capable families do; tiny models never do; other models behind a local server (llama.cpp,
    Ollama with an unknown model) get the chain, since a failed tool protocol is worse than no tools; any
    other model on OpenAI's API does.
    """
    name = _model_label(model) or settings.effective_chat_model or ""
    if _TOO_SMALL.search(name):
        return False
    if _TOOL_CAPABLE.search(name):
        return True
    if is_local_server(settings.openai_base_url):
        return False
    # A chat model object that cannot bind tools at all (plain scripted models) cannot run the agent.
    from langchain_core.language_models import BaseChatModel

    return type(model).bind_tools is not BaseChatModel.bind_tools


def supports_vision(settings: Settings) -> bool:
    """Whether images shared in a thread are sent to the configured chat model (LORE_VISION), rather than answered
    with a line saying Lore cannot read them. Decided from the settings alone: the bot decides before any model
    is made whether to download an image at all."""
    name = settings.effective_chat_model
    if name is None or settings.vision == "off":
        return False
    return settings.vision == "on" or bool(_VISION_CAPABLE.search(name))


def _model_label(model: BaseChatModel) -> str | None:
    for attribute in ("model_name", "model"):
        value = getattr(model, attribute, None)
        if isinstance(value, str):
            return value
    return None


def describe_model(model: BaseChatModel, settings: Settings) -> str:
    """The model name recorded with an answer."""
    return _model_label(model) or settings.effective_chat_model or type(model).__name__


class RepetitionGuard:
    """Watches a streamed answer and says when it has started repeating itself.

    A model in a loop writes the same sentence (or paragraph) again and again; a sentence of REPEAT_MIN_CHARS or
    more written REPEAT_LIMIT times is taken as a loop. Only completed sentences are compared, each once, so the
    cost stays linear in the answer's length.
    """

    def __init__(self) -> None:
        self.text = ""
        self._checked = 0
        self._seen: dict[str, int] = {}
        self.looping = False

    def feed(self, piece: str) -> bool:
        """Add a streamed piece; True once the answer is looping (the caller stops reading the stream)."""
        self.text += piece
        parts = _SENTENCE_END.split(self.text[self._checked :])
        for sentence in parts[:-1]:  # the last part may still be growing
            key = " ".join(sentence.split()).lower()
            if len(key) >= REPEAT_MIN_CHARS:
                self._seen[key] = self._seen.get(key, 0) + 1
                self.looping = self.looping or self._seen[key] >= REPEAT_LIMIT
        self._checked = len(self.text) - len(parts[-1])
        return self.looping


def trim_repetition(text: str) -> str:
    """The text without the sentences that repeat an earlier one (what a loop wrote after its first pass)."""
    pieces = _SENTENCE_BREAK.split(text)  # sentence, separator, sentence, ...
    kept: list[str] = []
    seen: set[str] = set()
    for sentence, separator in zip(pieces[::2], [*pieces[1::2], ""], strict=True):
        key = " ".join(sentence.split()).lower()
        if len(key) >= REPEAT_MIN_CHARS and key in seen:
            continue
        seen.add(key)
        kept.append(sentence + separator)
    return "".join(kept).strip()
