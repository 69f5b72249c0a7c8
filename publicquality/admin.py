from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from organisations.admin_base import ScopedModelAdmin

from .models import Commitment, FollowLink


@admin.register(Commitment)
class CommitmentAdmin(ScopedModelAdmin):
    list_display = [
        "channel",
        "answer_delay_seconds",
        "answer_rate_target",
        "within_delay_target",
        "organisation",
    ]
    list_filter = ["channel"]


@admin.register(FollowLink)
class FollowLinkAdmin(ScopedModelAdmin):
    """Links are made by acknowledgements only; here they are listed and revoked."""

    list_display = ["id", "interaction", "created_at", "last_viewed_at", "revoked_at"]
    list_filter = ["revoked_at"]
    readonly_fields = ["interaction", "nonce_hash", "created_at", "last_viewed_at", "revoked_at"]
    raw_id_fields = ["interaction"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Revoke the selected links"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        rows = self.editable_queryset(request, queryset).filter(revoked_at__isnull=True)
        count = rows.update(revoked_at=timezone.now())
        self.message_user(request, _("%(n)d link(s) revoked.") % {"n": count})
