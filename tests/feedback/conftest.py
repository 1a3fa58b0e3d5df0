"""Fixtures of the feedback tests."""

from tests.fakes.openai_files import fake_openai_files  # noqa: F401
