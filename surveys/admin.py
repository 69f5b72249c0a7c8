from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from organisations.admin_base import ScopedModelAdmin

from .models import SurveySettings


@admin.register(SurveySettings)
class SurveySettingsAdmin(ScopedModelAdmin):
    list_display = [
        "queue",
        "enabled",
        "on_chat",
        "on_sms",
        "on_email",
        "on_voice",
        "delay_seconds",
    ]
    list_filter = ["enabled"]
    fieldsets = [
        (None, {"fields": ["queue", "enabled", "delay_seconds"]}),
        (_("Channels"), {"fields": ["on_chat", "on_sms", "on_email", "on_voice"]}),
        (_("Question"), {"fields": ["question_fr", "question_en"]}),
    ]
