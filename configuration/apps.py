from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConfigurationConfig(AppConfig):
    name = "configuration"
    verbose_name = _("Centre configuration")

    def ready(self) -> None:
        from organisations import authz

        from .principals import teams_of_supervisor

        authz.provide_teams_of_supervisor(teams_of_supervisor)
