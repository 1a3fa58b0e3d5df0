"""Local stand-ins for paid or remote services the tests must not reach: Slack's Web API, OpenAI-compatible LLMs."""
