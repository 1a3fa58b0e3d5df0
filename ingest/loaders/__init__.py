"""One loader module per source kind: files, web, slack."""
