"""Celery workers: the slow work (ingest, feedback recording) off the Slack event path."""
