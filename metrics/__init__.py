"""Prometheus metrics on an internal endpoint (docs/operations.md, "Metrics")."""
