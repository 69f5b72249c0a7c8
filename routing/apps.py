from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = _("Routing")

    def ready(self) -> None:
        from agents.signals import agent_available
        from interactions.signals import interaction_status_changed

        from .escalation import schedule_step_passes
        from .receivers import (
            cancel_offers_of_left_interactions,
            on_agent_available,
            on_status_changed,
        )

        interaction_status_changed.connect(on_status_changed, dispatch_uid="routing.status")
        interaction_status_changed.connect(
            schedule_step_passes, dispatch_uid="routing.escalation_passes"
        )
        interaction_status_changed.connect(
            cancel_offers_of_left_interactions, dispatch_uid="routing.cancel_offers"
        )
        agent_available.connect(on_agent_available, dispatch_uid="routing.agent_available")
