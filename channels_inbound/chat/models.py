"""Models of this channel."""
