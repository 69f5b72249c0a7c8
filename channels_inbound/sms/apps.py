from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SmsChannelConfig(AppConfig):
    name = "channels_inbound.sms"
    label = "channels_sms"
    verbose_name = _("SMS channel")
