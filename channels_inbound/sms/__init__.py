"""SMS channel."""
