"""E-mail channel."""
