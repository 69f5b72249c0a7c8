from django.contrib import admin

from organisations.admin_base import ScopedModelAdmin

from .models import CannedResponse, InteractionWrapUp, WrapUpCode


@admin.register(WrapUpCode)
class WrapUpCodeAdmin(ScopedModelAdmin):
    list_display = ["code", "label", "active"]
    list_filter = ["active"]
    search_fields = ["code", "label"]


@admin.register(CannedResponse)
class CannedResponseAdmin(ScopedModelAdmin):
    list_display = ["title", "language", "queue", "active"]
    list_filter = ["language", "queue", "active"]
    search_fields = ["title", "text"]


@admin.register(InteractionWrapUp)
class InteractionWrapUpAdmin(ScopedModelAdmin):
    list_display = ["interaction", "code", "agent", "created_at"]
    list_filter = ["code"]
    raw_id_fields = ["interaction"]
    readonly_fields = ["interaction", "code", "notes", "agent", "created_at"]
