from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChannelsInboundConfig(AppConfig):
    name = "channels_inbound"
    verbose_name = _("Inbound channels")

    def ready(self) -> None:
        from . import identities

        identities.connect()
