"""Phone channel."""
