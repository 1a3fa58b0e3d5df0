"""Fixtures for the ingest tests."""

from tests.fakes.fixtures import fake_openai  # noqa: F401 - the OpenAI-compatible server for embeddings
