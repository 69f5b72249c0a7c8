"""Agents: profiles, teams, skills with levels, capacity per channel, telework number."""
