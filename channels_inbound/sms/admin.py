from django.contrib import admin

from organisations.admin_base import ScopedModelAdmin

from .models import InboundSms, OutboundSms, SmsOptOut, SmsStatusEvent


@admin.register(InboundSms)
class InboundSmsAdmin(ScopedModelAdmin):
    list_display = ["message_sid", "sender", "recipient", "state", "received_at"]
    list_filter = ["state", "provider"]
    search_fields = ["message_sid", "sender", "recipient"]
    readonly_fields = [f.name for f in InboundSms._meta.fields]


@admin.register(OutboundSms)
class OutboundSmsAdmin(ScopedModelAdmin):
    list_display = ["sid", "to", "from_number", "status", "created_at", "status_at"]
    list_filter = ["status"]
    search_fields = ["sid", "to"]
    readonly_fields = [f.name for f in OutboundSms._meta.fields]


@admin.register(SmsOptOut)
class SmsOptOutAdmin(ScopedModelAdmin):
    list_display = ["phone", "active", "keyword", "changed_at"]
    list_filter = ["active"]
    search_fields = ["phone"]


@admin.register(SmsStatusEvent)
class SmsStatusEventAdmin(ScopedModelAdmin):
    list_display = ["sid", "status", "error_code", "received_at"]
    search_fields = ["sid"]
