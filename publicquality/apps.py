from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PublicQualityConfig(AppConfig):
    name = "publicquality"
    verbose_name = _("Public quality and request follow-up")

    def ready(self) -> None:
        from channels_inbound import hooks

        from . import follow, receivers

        receivers.connect()
        # "Follow my request" in the SMS and e-mail acknowledgements (channels_inbound.hooks).
        hooks.ACKNOWLEDGEMENT_LINES.register(follow.follow_line)
