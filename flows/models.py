"""Flow definitions and versions."""
