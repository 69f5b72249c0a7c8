from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SurveysConfig(AppConfig):
    name = "surveys"
    verbose_name = _("Satisfaction surveys")

    def ready(self) -> None:
        from channels_inbound import hooks

        from . import actions, receivers, sms, voice

        receivers.connect()
        sms.register()
        # The channels ask these without importing surveys (channels_inbound.hooks).
        hooks.CHAT_ENDED_FORMS.register(actions.open_chat_survey)
        hooks.AFTER_CONVERSATION.register(voice.post_call_survey)
