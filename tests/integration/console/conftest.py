"""Console tests reuse the routing builders (skills, queues, agents, arrivals)."""

from tests.integration.routing.conftest import agent, arrive, queue, skill

__all__ = ["agent", "arrive", "queue", "skill"]
