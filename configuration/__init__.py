"""The centre's configuration: skills, teams, queues with their requirements and escalation steps.

Agents (skill levels, team), interactions (their queue), routing (offers), flows, supervision and
the channels all depend on it, and it depends on nothing but ``organisations`` and the kernel:
placing it here is what keeps agents, interactions and routing out of each other's models.
The tables kept their names (``routing_skill``, ``routing_queue``, ``agents_team``...) when the
models moved here (migration ``configuration.0001``, state only).
"""
