"""Lore over the Model Context Protocol: the knowledge base as tools and resources for any agent, on stdio
(`lore mcp`) and streamable HTTP (`/mcp` on `lore serve --http`), with the permissions of a DM with Lore."""
