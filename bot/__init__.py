"""The Slack surface: Bolt app, listeners, rendering, HTTP and Socket Mode servers."""
