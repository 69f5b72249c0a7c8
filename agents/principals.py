"""What the authorization layer (``organisations.authz``) learns from the agents app to build a
user's principal: which agent the user is. Provided from ``AgentsConfig.ready()``."""

from __future__ import annotations

from organisations.authz import AgentRecord

from .models import AgentProfile


def agent_of_user(user_id: int) -> AgentRecord | None:
    row = AgentProfile.objects.filter(user_id=user_id).values_list("pk", "organisation_id").first()
    return AgentRecord(pk=row[0], organisation_id=row[1]) if row else None
