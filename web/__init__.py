"""Lore Console: the web pages under /console/ and the versioned HTTP API under /api/v1 they use."""
