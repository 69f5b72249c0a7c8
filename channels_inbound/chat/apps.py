from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChatChannelConfig(AppConfig):
    name = "channels_inbound.chat"
    label = "channels_chat"
    verbose_name = _("Web chat channel")

    def ready(self) -> None:
        from . import receivers

        receivers.connect()
