from django.contrib import admin

from .models import Case, Contact, ContactIdentity, ContactMerge, IdentityRemoval


class IdentityInline(admin.TabularInline):
    model = ContactIdentity
    extra = 0


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["id", "display_name", "preferred_language", "merged_into", "created_at"]
    search_fields = ["display_name", "identities__value"]
    list_filter = ["preferred_language"]
    inlines = [IdentityInline]
    readonly_fields = ["merged_into", "created_at", "updated_at"]


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["reference", "subject", "contact", "status", "created_at"]
    search_fields = ["reference", "subject"]
    list_filter = ["status"]
    raw_id_fields = ["contact"]


@admin.register(ContactMerge)
class ContactMergeAdmin(admin.ModelAdmin):
    list_display = ["merged_at", "source", "target", "merged_by"]
    readonly_fields = ["source", "target", "merged_by", "merged_at", "moved"]

    def has_add_permission(self, request: object) -> bool:  # merges go through the action
        return False


@admin.register(IdentityRemoval)
class IdentityRemovalAdmin(admin.ModelAdmin):
    list_display = ["removed_at", "contact", "kind", "value", "removed_by"]
    search_fields = ["value"]
    readonly_fields = ["contact", "kind", "value", "removed_by", "removed_at"]

    def has_add_permission(self, request: object) -> bool:  # removals go through the action
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
