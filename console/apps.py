from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = _("Agent console")

    def ready(self) -> None:
        from kernel import events

        from . import outbox, receivers
        from .third_party_labels import translate_security_labels

        events.set_agent_outbox(outbox.record_agent_events)
        receivers.connect()
        translate_security_labels()
