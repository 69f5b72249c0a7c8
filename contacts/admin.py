from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest

from organisations import authz
from organisations.admin_base import ScopedModelAdmin, ScopedTabularInline

from .actions import IdentityRemovalRefused, do_remove_identity
from .models import Case, Contact, ContactIdentity, ContactMerge, IdentityRemoval


class IdentityInline(ScopedTabularInline):
    model = ContactIdentity
    extra = 0


@admin.register(Contact)
class ContactAdmin(ScopedModelAdmin):
    list_display = ["id", "display_name", "preferred_language", "merged_into", "created_at"]
    search_fields = ["display_name", "identities__value"]
    list_filter = ["preferred_language"]
    inlines = [IdentityInline]
    readonly_fields = ["merged_into", "created_at", "updated_at"]

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not ContactIdentity:
            super().save_formset(request, form, formset, change)
            return
        if change:
            authz.check_change(request.user, form.instance)
        identities = formset.save(commit=False)
        # A removal goes through the action: refused while in use, and audited.
        for identity in formset.deleted_objects:
            try:
                do_remove_identity(
                    contact_id=form.instance.pk, identity_id=identity.pk, actor_id=request.user.pk
                )
            except IdentityRemovalRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
        for identity in identities:
            identity.save()
        formset.save_m2m()


@admin.register(Case)
class CaseAdmin(ScopedModelAdmin):
    list_display = ["reference", "subject", "contact", "status", "created_at"]
    search_fields = ["reference", "subject"]
    list_filter = ["status"]
    raw_id_fields = ["contact"]


@admin.register(ContactMerge)
class ContactMergeAdmin(ScopedModelAdmin):
    list_display = ["merged_at", "source", "target", "merged_by"]
    readonly_fields = ["source", "target", "merged_by", "merged_at", "moved"]

    def has_add_permission(self, request: object) -> bool:  # merges go through the action
        return False


@admin.register(IdentityRemoval)
class IdentityRemovalAdmin(ScopedModelAdmin):
    list_display = ["removed_at", "contact", "kind", "value", "removed_by"]
    search_fields = ["value"]
    readonly_fields = ["contact", "kind", "value", "removed_by", "removed_at"]

    def has_add_permission(self, request: object) -> bool:  # removals go through the action
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
