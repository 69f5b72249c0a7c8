"""Interactions (one contact on one channel) and their messages, with the life cycle."""
