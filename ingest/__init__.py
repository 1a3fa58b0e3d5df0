"""Ingestion: sources to documents to chunks in the knowledge base."""
