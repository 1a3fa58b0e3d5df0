"""Stand-ins and drivers for running Lore without Slack's servers or a paid model, shared by tests/ and bench/.

A fake Slack Web API, a scripted OpenAI-compatible server, a local web site, Slack request signing, real
Lore/Redis/PostgreSQL processes, and the waiting helpers they need. Not shipped (pyproject packages only
lore, bot, workers and ingest) and free of pytest: tests/fakes/fixtures.py wraps these in fixtures.
"""
