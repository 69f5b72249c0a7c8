from django.contrib import admin

from organisations.admin_base import ScopedModelAdmin, ScopedTabularInline

from .models import Call, CallEvent


class CallEventInline(ScopedTabularInline):
    model = CallEvent
    extra = 0
    can_delete = False
    readonly_fields = ["kind", "data", "at"]


@admin.register(Call)
class CallAdmin(ScopedModelAdmin):
    list_display = ["call_sid", "caller_e164", "called", "outcome", "status", "started_at"]
    list_filter = ["outcome", "status"]
    search_fields = ["call_sid", "caller_e164", "called"]
    readonly_fields = [f.name for f in Call._meta.fields]
    inlines = [CallEventInline]
