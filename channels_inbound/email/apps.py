from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EmailChannelConfig(AppConfig):
    name = "channels_inbound.email"
    label = "channels_email"
    verbose_name = _("E-mail channel")
