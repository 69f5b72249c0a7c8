from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PublicQualityConfig(AppConfig):
    name = "publicquality"
    verbose_name = _("Public quality and request follow-up")

    def ready(self) -> None:
        from . import receivers

        receivers.connect()
