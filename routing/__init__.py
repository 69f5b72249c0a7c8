"""Skills-based routing: skills, queues and escalation steps, the router, offers."""
