from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = _("Agents")

    def ready(self) -> None:
        from organisations import authz

        from .principals import agent_of_user

        authz.provide_agent_of_user(agent_of_user)
