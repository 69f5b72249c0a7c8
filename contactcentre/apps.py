from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ContactCentreConfig(AppConfig):
    name = "contactcentre"
    verbose_name = _("Contact centre")

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
