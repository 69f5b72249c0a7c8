from django.contrib import admin

from organisations.admin_base import ScopedModelAdmin

from .models import EmailAcknowledgement, EmailThreadEntry, ImapMailboxState


@admin.register(EmailThreadEntry)
class EmailThreadEntryAdmin(ScopedModelAdmin):
    list_display = ["message_id", "interaction", "direction", "citizen_address", "created_at"]
    list_filter = ["direction", "auto_submitted"]
    search_fields = ["message_id", "citizen_address", "subject"]
    raw_id_fields = ["interaction", "stored_message"]


@admin.register(EmailAcknowledgement)
class EmailAcknowledgementAdmin(ScopedModelAdmin):
    list_display = ["address", "day", "interaction", "created_at"]
    search_fields = ["address"]
    raw_id_fields = ["interaction"]


@admin.register(ImapMailboxState)
class ImapMailboxStateAdmin(ScopedModelAdmin):
    list_display = ["key", "uidvalidity", "last_uid", "rescans", "last_polled_at", "last_error"]
