from django.contrib import admin

from organisations.admin_base import ScopedModelAdmin, ScopedTabularInline

from .models import Interaction, InteractionTransition, Message


class MessageInline(ScopedTabularInline):
    model = Message
    extra = 0
    fields = readonly_fields = ("created_at", "direction", "text", "provider_id", "delivery_status")
    can_delete = False


class TransitionInline(ScopedTabularInline):
    model = InteractionTransition
    extra = 0
    fields = readonly_fields = ("at", "from_status", "to_status", "reason", "actor")
    can_delete = False


@admin.register(Interaction)
class InteractionAdmin(ScopedModelAdmin):
    list_display = ["id", "channel", "status", "queue", "contact", "assigned_agent", "created_at"]
    list_filter = ["channel", "status", "queue"]
    search_fields = ["subject", "contact__display_name", "external_ref"]
    raw_id_fields = ["contact", "case", "assigned_agent"]
    # The status only changes through the life cycle (actions), never by hand.
    readonly_fields = [
        "status",
        "created_at",
        "queued_at",
        "offered_at",
        "assigned_at",
        "wrap_up_at",
        "transferred_at",
        "closed_at",
        "abandoned_at",
    ]
    inlines = [MessageInline, TransitionInline]
