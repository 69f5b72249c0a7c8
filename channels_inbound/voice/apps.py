from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VoiceChannelConfig(AppConfig):
    name = "channels_inbound.voice"
    label = "channels_voice"
    verbose_name = _("Phone channel")

    def ready(self) -> None:
        from . import receivers

        receivers.connect()
