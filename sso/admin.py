"""Identity providers and the links of users to their ``sub``: an organisation's administrators
(and platform administrators) only (organisations/authz.py, ADMIN_ONLY)."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from organisations.admin_base import ScopedModelAdmin, ScopedModelForm

from .models import ExternalIdentity, IdentityProvider


class IdentityProviderForm(ScopedModelForm):
    discovery_url = forms.URLField(
        label=IdentityProvider._meta.get_field("discovery_url").verbose_name,
        help_text=IdentityProvider._meta.get_field("discovery_url").help_text,
        max_length=500,
        assume_scheme="https",
    )

    class Meta:
        model = IdentityProvider
        fields = "__all__"
        widgets = {"client_secret": forms.PasswordInput(render_value=True)}


@admin.register(IdentityProvider)
class IdentityProviderAdmin(ScopedModelAdmin):
    form = IdentityProviderForm
    list_display = ["name", "kind", "enabled", "match_on", "create_accounts", "organisation"]
    list_filter = ["kind", "enabled"]


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(ScopedModelAdmin):
    list_display = ["user", "provider", "sub", "created_at", "last_login_at"]
    list_filter = ["provider"]
    search_fields = ["user__username", "user__email", "sub"]
    raw_id_fields = ["user"]
    readonly_fields = ["created_at", "last_login_at"]
